"""Peer parity on tables: keras_adv's Evolutionary / CAPGD / CAA vs MOEVA and CPGD from the PyPI `constrained-attacks` package.

Same model, same records, same constraints, same success rule:

* a Keras MLP is trained on scikit-learn's breast-cancer table; its weights are
  copied into the equivalent torch MLP (MOEVA's classifier) and into the
  equivalent tf.keras 2 MLP (CPGD's classifier, behind CPGD's min-max scaler),
  and each copy's logits are checked to agree with the Keras model's to 1e-5
  on the attacked records;
* the constraints are those of `keras_adv.datasets.tabular.breast_cancer_space()`:
  per-feature bounds and the ten "worst ≥ mean" relations, written for the
  peer in its own constraint language (`Feature(i) <= Feature(j)`, one
  `Constraints` object for both peer attacks);
* success = a record that the independent checker
  (`keras_adv.domains.check_examples`) finds valid, inside the scaled L∞ budget
  ε, and misclassified. For MOEVA, whose output is a population per record,
  a record counts as broken when *any* individual of its final population
  qualifies (the peer's own success rule); keras_adv and CPGD return one
  record each;
* CPGD runs with keras_adv CAPGD's ε, norm (L∞ on scaled features) and step
  count (100), with its constraint penalty on and off; CPGD 0.1.1 hard-codes
  `norm=2` in its call to ART's PGD, so the norm is passed through a subclass
  of ART's PGD (the only change to the peer's code path), and the shipped L2
  variant is reported as well (an L2 ball of radius ε is a subset of the L∞
  one). Step size: ε/3, the ratio of CPGD's own defaults (eps=0.3,
  eps_step=0.1); no random start (CPGD's default);
* speed: records per second, wall clock, after one warm-up call on each side
  (graph tracing excluded); MOEVA runs its documented per-record pymoo loop with
  `n_jobs=1` (the machine has 2 shared cores).

The peers live in their own environments (never a keras_adv dependency).
Installs on this machine (Python 3.11; constrained-attacks 0.1.1 declares
Python 3.8 only, hence `--ignore-requires-python`, and no dependencies are
taken from its metadata because its "tensorflow" extra pins TensorFlow 2.8,
which has no Python 3.11 wheels).

MOEVA (torch):

    python -m venv /work/venvs/tables
    /work/venvs/tables/bin/pip install torch==2.13.0
    /work/venvs/tables/bin/pip install "numpy<2" "scipy<1.14" "pandas<2" "matplotlib<3.9" "pymoo==0.5.0" joblib tqdm
    /work/venvs/tables/bin/pip install --no-deps --ignore-requires-python constrained-attacks==0.1.1

CPGD (tf.keras 2 + IBM ART; TensorFlow 2.15 is the last release whose tf.keras
is Keras 2 and has Python 3.11 wheels; ART 1.10.3 is the release CPGD pins,
installed without its dependency pins, which ask for scikit-learn < 1.1, a
version with no Python 3.11 wheels; ART imports numba at import time):

    python -m venv /work/venvs/cpgd
    /work/venvs/cpgd/bin/pip install "tensorflow-cpu==2.15.1" "numpy==1.23.5"
    /work/venvs/cpgd/bin/pip install --no-deps "adversarial-robustness-toolbox==1.10.3"
    /work/venvs/cpgd/bin/pip install "numpy==1.23.5" "scipy<1.14" "scikit-learn<1.5" "pandas<2" "matplotlib<3.9" \
        "pymoo==0.5.0" "numba==0.58.1" six tqdm setuptools joblib
    /work/venvs/cpgd/bin/pip install --no-deps --ignore-requires-python constrained-attacks==0.1.1

What cannot be compared, and why: `tabularbench` (the successor with CAPGD/CAA
in torch) requires Python < 3.11 on PyPI ("0.1.0 Requires-Python
<3.11,>=3.8.1"): pip finds no installable version here.

Run from the repository root:

    PYTHONPATH=. python benchmarks/tabular_parity.py [--n 20] [--peer-python /work/venvs/tables/bin/python]
        [--cpgd-python /work/venvs/cpgd/bin/python]

Writes benchmarks/results/tabular_parity.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
EPS = 0.05
STEPS = 100
CPGD_ROWS = {"linf_on": "constrained-attacks CPGD (L∞, constraints on)",
             "linf_off": "constrained-attacks CPGD (L∞, constraints off)",
             "l2_on": "constrained-attacks CPGD as shipped (L2, constraints on)"}


# --------------------------------------------------------------- peer side (venvs)
def _peer_constraints(d):
    """The payload's bounds and "worst ≥ mean" relations in the peer's constraint language (both peer attacks)."""
    import numpy as np
    from constrained_attacks.constraints.constraints import Constraints
    from constrained_attacks.constraints.relation_constraint import Feature

    n = d["x"].shape[1]
    return Constraints(
        feature_types=np.array(["real"] * n), mutable_features=np.ones(n, bool),
        lower_bounds=d["lower"].astype(float), upper_bounds=d["upper"].astype(float),
        relation_constraints=[Feature(int(i)) <= Feature(int(j)) for i, j in zip(d["rel_left"], d["rel_right"])],
        feature_names=None)


def run_peer(path):
    """Runs in the peer's environment: torch MLP from the Keras weights, then MOEVA."""
    import numpy as np
    import torch
    from constrained_attacks.attacks.moeva.moeva import Moeva2

    d = dict(np.load(path, allow_pickle=True))
    layers = []
    kernels = [k for k in sorted(d) if k.startswith("kernel_")]
    for i, name in enumerate(kernels):
        lin = torch.nn.Linear(*d[name].shape)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(d[name].T))
            lin.bias.copy_(torch.tensor(d[f"bias_{i}"]))
        layers += [lin, torch.nn.ReLU()] if i < len(kernels) - 1 else [lin]
    mean, std = torch.tensor(d["norm_mean"]), torch.tensor(d["norm_std"])
    net = torch.nn.Sequential(*layers).eval()

    def logits(x):
        with torch.no_grad():
            return net((torch.tensor(np.asarray(x, np.float32)) - mean) / std).numpy()

    agree = float(np.max(np.abs(logits(d["x"]) - d["keras_logits"])))

    class Classifier:
        def predict_proba(self, x):
            z = logits(x)
            e = np.exp(z - z.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

    constraints = _peer_constraints(d)
    scale = d["scale"]
    attack = Moeva2(Classifier(), constraints, norm=np.inf, fun_distance_preprocess=lambda x: x / scale,
                    n_gen=int(d["n_gen"]), n_pop=int(d["n_pop"]), n_offsprings=int(d["n_offsprings"]),
                    seed=0, n_jobs=1, verbose=0)
    t = time.perf_counter()
    pop = attack.generate(d["x"].astype(np.float64), d["y"].astype(int))
    seconds = time.perf_counter() - t
    np.save(path.replace(".npz", "_moeva.npy"), np.asarray(pop, np.float32))
    print(json.dumps({"agree_max_abs": agree, "seconds": seconds, "torch": torch.__version__}))


def run_peer_cpgd(path):
    """Runs in the CPGD environment: tf.keras 2 MLP from the Keras 3 weights, then CPGD (ART PGD underneath).

    CPGD attacks in the space of a min-max scaler, which it takes with the
    model as a `(scaler, classifier)` pair. The scaler maps `[lower, lower +
    scale]` to [0, 1], so an L∞ ball of radius ε there is keras_adv's scaled
    budget. The tf.keras model reads scaled records: it undoes the scaler,
    then applies the Keras model's Normalization and Dense layers.
    CPGD 0.1.1 hard-codes `norm=2` and ART's default 100 iterations in its
    call to ART's PGD; each variant below passes the norm and step count
    through a subclass of that PGD, the only change to the peer's code path.
    """
    import numpy as np
    import tensorflow as tf
    from art.attacks.evasion import ProjectedGradientDescent
    import art
    import constrained_attacks.attacks.cpgd.cpgd as cpgd_module
    from sklearn.preprocessing import MinMaxScaler

    d = dict(np.load(path, allow_pickle=True))
    lower, scale = d["lower"].astype(np.float64), d["scale"].astype(np.float64)
    scaler = MinMaxScaler().fit(np.stack([lower, lower + scale]))
    mean, std = d["norm_mean"], d["norm_std"]
    kernels = [k for k in sorted(d) if k.startswith("kernel_")]
    net = tf.keras.Sequential([tf.keras.Input((d["x"].shape[1],)),
                               tf.keras.layers.Lambda(lambda s: (s * scale.astype(np.float32) + lower.astype(np.float32) - mean) / std)])
    for i, name in enumerate(kernels):
        dense = tf.keras.layers.Dense(d[name].shape[1], activation="relu" if i < len(kernels) - 1 else None)
        net.add(dense)
        dense.set_weights([d[name], d[f"bias_{i}"]])
    net.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = d["x"].astype(np.float64)
    agree = float(np.max(np.abs(net(scaler.transform(x).astype(np.float32)).numpy() - d["keras_logits"])))

    class Classifier:  # the interface CPGD reads: `.get_internal_classifier()` -> a compiled tf.keras model
        def get_internal_classifier(self):
            return net

    out, seconds = {}, {}
    for key, norm, constrained in (("linf_on", np.inf, True), ("linf_off", np.inf, False), ("l2_on", 2, True)):
        class PGD(ProjectedGradientDescent):
            def __init__(self, *args, norm=None, _norm=norm, **kwargs):
                super().__init__(*args, norm=_norm, max_iter=int(d["steps"]), verbose=False, **kwargs)

        cpgd_module.PGD = PGD
        attack = cpgd_module.CPGD((scaler, Classifier()), _peer_constraints(d), eps=float(d["epsilon"]),
                                  eps_step=float(d["epsilon"]) / 3, enable_constraints=constrained, verbose=0)
        attack.generate(x[:2], d["y"][:2].astype(int))  # warm-up, as for keras_adv
        t = time.perf_counter()
        out[key] = np.asarray(attack.generate(x, d["y"].astype(int)), np.float32).reshape(x.shape)
        seconds[key] = time.perf_counter() - t
    np.savez(path.replace(".npz", "_cpgd.npz"), **out)
    print(json.dumps({"agree_max_abs": agree, "seconds": seconds, "tensorflow": tf.__version__,
                      "tf_keras": tf.keras.__version__ if hasattr(tf.keras, "__version__") else __import__("keras").__version__,
                      "art": art.__version__}))


# ------------------------------------------------------------- our side (keras_adv)
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20, help="records attacked")
    parser.add_argument("--peer-python", default="/work/venvs/tables/bin/python", help="venv with torch + MOEVA")
    parser.add_argument("--cpgd-python", default="/work/venvs/cpgd/bin/python", help="venv with tf.keras 2 + ART + CPGD")
    parser.add_argument("--n-gen", type=int, default=100)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--peer-cpgd", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return run_peer(args.peer)
    if args.peer_cpgd:
        return run_peer_cpgd(args.peer_cpgd)
    wall = time.perf_counter()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from keras_adv import attacks as A
    from keras_adv.datasets import tabular
    from keras_adv.domains import check_examples

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tabular.load_breast_cancer()
    space = tabular.breast_cancer_space()
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    model = keras.Sequential([keras.Input((30,)), norm, keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=60, batch_size=64, verbose=0)
    pred = model.predict(x_test, verbose=0).argmax(1)
    keep = np.flatnonzero(pred == y_test)[: args.n]
    x, y = x_test[keep], y_test[keep]

    rel = space.relations[0].fn
    n_pop, n_off = 100, 50
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    payload = {f"kernel_{i}": l.get_weights()[0] for i, l in enumerate(dense)}
    payload.update({f"bias_{i}": l.get_weights()[1] for i, l in enumerate(dense)})
    payload.update(norm_mean=np.asarray(norm.mean).reshape(-1), norm_std=np.sqrt(np.maximum(np.asarray(norm.variance).reshape(-1), 1e-7)),
                   x=x, y=y, keras_logits=model.predict(x, verbose=0), lower=space.lower, upper=space.upper,
                   scale=space.scale, rel_left=np.array(rel.left), rel_right=np.array(rel.right),
                   n_gen=args.n_gen, n_pop=n_pop, n_offsprings=n_off, epsilon=EPS, steps=STEPS)
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "parity.npz")
    np.savez(path, **payload)

    def broken(candidates):
        """(records,) bool: some candidate of each record is valid, within ε, misclassified (independent checker)."""
        cands = candidates.reshape(len(x), -1, x.shape[1])
        k = cands.shape[1]
        flat = cands.reshape(-1, x.shape[1])
        ref = np.repeat(x, k, axis=0)
        ok = check_examples(space, flat, ref, epsilon=EPS).valid
        wrong = model.predict(flat, verbose=0, batch_size=4096).argmax(1) != np.repeat(y, k)
        return (ok & wrong).reshape(len(x), k).any(axis=1), ok.reshape(len(x), k).any(axis=1)

    rows = {}
    ours = {
        "keras_adv Evolutionary": A.Evolutionary(EPS, domain=space, generations=args.n_gen, population=n_pop // 2, seed=0),
        "keras_adv CAPGD": A.CAPGD(EPS, domain=space, steps=STEPS, seed=0),
        "keras_adv ConstrainedAutoAttack": A.ConstrainedAutoAttack(EPS, domain=space, steps=STEPS, restarts=1,
                                                                   generations=args.n_gen, population=n_pop // 2, seed=0),
    }
    for name, attack in ours.items():
        attack.generate(model, x, y, verbose=0)  # warm-up (trace)
        t = time.perf_counter()
        x_adv = attack.generate(model, x, y, verbose=0)
        seconds = time.perf_counter() - t
        ok, valid = broken(x_adv)
        rows[name] = {"success_rate": float(ok.mean()), "valid_fraction": float(valid.mean()),
                      "records_per_s": len(x) / seconds, "seconds": seconds}
        print(name, rows[name], flush=True)

    def call_peer(python, flag):
        out = subprocess.run([python, __file__, flag, path], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"peer run {flag} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    cpgd = call_peer(args.cpgd_python, "--peer-cpgd")
    cpgd_adv = np.load(path.replace(".npz", "_cpgd.npz"))
    for key, name in CPGD_ROWS.items():
        ok, valid = broken(cpgd_adv[key])
        rows[name] = {"success_rate": float(ok.mean()), "valid_fraction": float(valid.mean()),
                      "records_per_s": len(x) / cpgd["seconds"][key], "seconds": cpgd["seconds"][key]}
        print(name, rows[name], flush=True)
    print("CPGD env", cpgd, flush=True)

    peer = call_peer(args.peer_python, "--peer")
    pop = np.load(path.replace(".npz", "_moeva.npy"))
    ok, valid = broken(pop)
    rows["constrained-attacks MOEVA (Moeva2)"] = {
        "success_rate": float(ok.mean()), "valid_fraction": float(valid.mean()),
        "records_per_s": len(x) / peer["seconds"], "seconds": peer["seconds"]}
    print("MOEVA", rows["constrained-attacks MOEVA (Moeva2)"], peer, flush=True)

    result = {
        "dataset": "breast_cancer (scikit-learn, real)", "epsilon": EPS, "norm": "linf on scaled features",
        "records": int(len(x)), "generations": args.n_gen, "moeva_population": n_pop, "moeva_offsprings": n_off,
        "keras_adv_population": n_pop // 2,
        "steps": STEPS, "cpgd_eps_step": EPS / 3,
        "torch_vs_keras_logits_max_abs_diff": peer["agree_max_abs"], "torch": peer["torch"],
        "tf_keras2_vs_keras_logits_max_abs_diff": cpgd["agree_max_abs"],
        "cpgd_env": {"tensorflow": cpgd["tensorflow"], "tf_keras": cpgd["tf_keras"], "art": cpgd["art"]},
        "keras": keras.__version__, "python": sys.version.split()[0], "cpu_count": os.cpu_count(), "rows": rows,
        "wall_seconds": time.perf_counter() - wall,
    }
    assert peer["agree_max_abs"] <= 1e-5, peer["agree_max_abs"]
    assert cpgd["agree_max_abs"] <= 1e-5, cpgd["agree_max_abs"]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "tabular_parity.json"), "w") as f:
        json.dump(result, f, indent=1)
    base = rows["constrained-attacks MOEVA (Moeva2)"]["records_per_s"]
    capgd, peer_capgd = rows["keras_adv CAPGD"], rows[CPGD_ROWS["linf_on"]]
    lines = [f"Tabular peer parity (`benchmarks/tabular_parity.py`): breast cancer, {len(x)} correctly classified "
             f"test records, ε = {EPS} (scaled L∞ unless marked L2), {STEPS} gradient steps, worst ≥ mean relations; "
             f"the torch copy (MOEVA) of the Keras MLP agrees to {peer['agree_max_abs']:.1e}, the tf.keras 2 copy (CPGD) "
             f"to {cpgd['agree_max_abs']:.1e}. Success = valid (independent checker `check_examples`: bounds, "
             f"relations, budget) and misclassified; valid = fraction of records whose output passes the checker. "
             f"One run, {result['wall_seconds']:.0f} s wall.", "",
             "| attack | success rate | valid | records/s | speed vs MOEVA |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['success_rate']:.3f} | {r['valid_fraction']:.3f} | {r['records_per_s']:.2f} "
                     f"| {r['records_per_s'] / base:.1f}× |")
    lines += ["", f"keras_adv CAPGD vs constrained-attacks CPGD (L∞, constraints on): success "
              f"{capgd['success_rate']:.3f} vs {peer_capgd['success_rate']:.3f}, "
              f"{capgd['records_per_s'] / peer_capgd['records_per_s']:.1f}× the records per second."]
    with open(os.path.join(RESULTS, "tabular_parity.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
