"""Text robustness benchmark: HotFlip k = 1, 2, 3 against undefended, embedding-AT and VAT models,
and VAT on digits with 10% of the labels.

Part 1, the synthetic task (`keras_adv.datasets.synthetic_text`, documented as synthetic): sentiment
is carried by a few marker tokens among ~1,000 distractor tokens (label = the class with more markers,
a margin of one marker). HotFlip may substitute any distractor by any distractor and never touches
markers or padding (`protected_tokens`), so the true label provably survives every attack and robust
accuracy under ≤ k substitutions is well defined (the script asserts `label_of(x_adv) == y`).
Models: the `text_classifier` preset (CNN, embedding 32) trained 15 epochs (Adam 3e-3, batch 64) on
1,000 sequences, tested on 500:

* undefended: plain `fit`;
* embedding AT: `AdversarialModel(perturb_layer="embedding")` with PGD-L2 (3 steps) at ε = 1.0 per
  sequence, ε ramped by `EpsilonRamp` (2 clean epochs, then 8 ramp epochs);
* VAT: `objective="vat"` with `VirtualAdversarial(ε=1.0, ξ=0.1)` on the embedding, same ramp.

Robust accuracy (correct clean and after the attack) from `evaluate_robustness` with HotFlip
(top_k=16 exact checks per step) at ε = k ∈ {1, 2, 3}; mean and spread over three seeds
(data split and initialisation).

Part 2, VAT on digits (scikit-learn's 8×8 digits, offline): 10% of the training labels (stratified),
a small MLP; the same model (a) on the labeled 10% only, (b) with VAT on all training images
(`objective="vat"`, unlabeled with sample_weight 0 via `keras_adv.datasets.with_unlabeled`,
`VirtualAdversarial(ε=0.3, ξ=1e-6)` on the pixels, L2). Test accuracy on the fixed test split,
three seeds.

Run: `PYTHONPATH=$PWD python benchmarks/text_robustness.py` (about 10 minutes on 2 CPU cores;
`--quick` for a one-seed smoke run). Writes `benchmarks/results/text_robustness.json`.
No peer libraries are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "text_robustness.json")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def text_models(seed, *, n_train=1000, n_test=500, epochs=15, eps=1.0):
    task = ka.datasets.synthetic_text(n_train + n_test, vocab_size=1000, seed=seed)
    x_tr, y_tr, x_te, y_te = task.x[:n_train], task.y[:n_train], task.x[n_train:], task.y[n_train:]
    ramp = [ka.callbacks.EpsilonRamp(ramp_epochs=8, start_epoch=2)]
    out = {}
    for kind in ("undefended", "embedding_at", "vat"):
        keras.utils.set_random_seed(seed)
        base = ka.models.presets.text_classifier(task.vocab_size, 2, sequence_length=32, architecture="cnn",
                                                 embedding_dim=32, width=32)
        if kind == "undefended":
            model, callbacks = base, []
        elif kind == "embedding_at":
            model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=eps, norm="l2", steps=3),
                                        perturb_layer="embedding", seed=seed)
            callbacks = ramp
        else:
            model = ka.AdversarialModel(base, attack=ka.attacks.VirtualAdversarial(epsilon=eps, xi=0.1),
                                        objective="vat", perturb_layer="embedding", seed=seed)
            callbacks = ramp
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=LOSS, metrics=["accuracy"])
        t0 = time.perf_counter()
        model.fit(x_tr, y_tr, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)
        train_s = time.perf_counter() - t0
        hotflip = ka.attacks.HotFlip(max_substitutions=3, protected_tokens=task.protected_tokens, top_k=16)
        report = ka.evaluate_robustness(base, x_te, y_te, attacks={"hotflip": hotflip}, epsilons=[1, 2, 3],
                                        verbose=0, batch_size=250)
        x_adv = hotflip.generate(base, x_te, y_te, verbose=0)
        assert np.array_equal(task.label_of(x_adv), y_te), "an attack changed a true label"
        assert ((x_adv != x_te).sum(1) <= 3).all()
        d = report.to_dict()
        out[kind] = {
            "clean_accuracy": d["clean_accuracy"],
            "robust_accuracy": {str(int(r["epsilon"])): r["robust_accuracy"] for r in d["worst_case"]},
            "train_seconds": round(train_s, 1),
        }
        print(f"seed {seed} {kind:13s} clean {d['clean_accuracy']:.3f} robust "
              + " ".join(f"k={k}:{v:.3f}" for k, v in out[kind]["robust_accuracy"].items()), flush=True)
    return out


def accuracy(model, x, y):
    return float((model.predict(x, verbose=0, batch_size=512).argmax(1) == y).mean())


def vat_digits(seed, *, label_fraction=0.1, epochs=60):
    (x_tr, y_tr), (x_te, y_te) = ka.datasets.load_digits()
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    rng = np.random.default_rng(seed)
    labeled = np.concatenate([rng.permutation(np.flatnonzero(y_tr == c))[:max(1, int(round(label_fraction * (y_tr == c).sum())))]
                              for c in range(10)])
    unlabeled = np.setdiff1d(np.arange(len(x_tr)), labeled)

    def mlp():
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                                 keras.layers.Dense(10)])

    res = {"num_labeled": int(len(labeled)), "num_unlabeled": int(len(unlabeled))}
    base = mlp()
    base.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
    # same number of optimizer steps as the VAT run below
    steps = epochs * int(np.ceil(len(x_tr) / 64))
    sup_epochs = int(np.ceil(steps / np.ceil(len(labeled) / 64)))
    base.fit(x_tr[labeled], y_tr[labeled], epochs=sup_epochs, batch_size=64, verbose=0)
    res["labels_only"] = accuracy(base, x_te, y_te)

    base = mlp()
    model = ka.AdversarialModel(base, attack=ka.attacks.VirtualAdversarial(epsilon=0.3), objective="vat",
                                seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
    x, y, w = ka.datasets.with_unlabeled(x_tr[labeled], y_tr[labeled], x_tr[unlabeled], seed=seed)
    model.fit(x, y, sample_weight=w, epochs=epochs, batch_size=64, verbose=0)
    res["vat"] = accuracy(base, x_te, y_te)
    print(f"seed {seed} digits {label_fraction:.0%} labels: labels only {res['labels_only']:.3f}, "
          f"VAT {res['vat']:.3f}", flush=True)
    return res


def summarize(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, fewer epochs (smoke run)")
    args = parser.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    t0 = time.perf_counter()
    text_runs = [text_models(s, epochs=6 if args.quick else 15) for s in seeds]
    digit_runs = [vat_digits(s, epochs=10 if args.quick else 60) for s in seeds]
    table = {}
    for kind in ("undefended", "embedding_at", "vat"):
        table[kind] = {"clean_accuracy": summarize([r[kind]["clean_accuracy"] for r in text_runs])}
        for k in ("1", "2", "3"):
            table[kind][f"robust_accuracy_k{k}"] = summarize([r[kind]["robust_accuracy"][k] for r in text_runs])
    out = {
        "benchmark": "text_robustness",
        "quick": bool(args.quick),
        "seeds": seeds,
        "synthetic_text": {
            "task": "keras_adv.datasets.synthetic_text(1500, vocab_size=1000) - synthetic, 1000 train / 500 test",
            "attack": "HotFlip(max_substitutions=k, protected_tokens=markers+pad+OOV, top_k=16); "
                      "robust = correct clean and attacked",
            "summary": table,
            "runs": text_runs,
        },
        "vat_digits": {
            "task": "sklearn digits, 10% of training labels, MLP 64-128-10",
            "summary": {"labels_only": summarize([r["labels_only"] for r in digit_runs]),
                        "vat": summarize([r["vat"] for r in digit_runs])},
            "runs": digit_runs,
        },
        "environment": {"python": platform.python_version(), "tensorflow": tf.__version__,
                        "keras": keras.__version__, "machine": platform.machine(),
                        "cpus": os.cpu_count()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if not args.quick:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(out, f, indent=1)
        print("wrote", RESULTS)
    print(json.dumps({"synthetic_text": table, "vat_digits": out["vat_digits"]["summary"]}, indent=1))


if __name__ == "__main__":
    main()
