"""Honest-evaluation demo on the bundled digits: diagnostics on a planted set, reports, transfer, detection.

Run from the repository root:

    PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/evaluation_demo.py

Writes benchmarks/results/evaluation.md, its README numbers in evaluation.json,
and PNG figures next to them. Takes a
few minutes on 2 CPU cores. The gradient-free attack is
`keras_adv.attacks.Square` when it exists, else the small random-search
attack of tests/evaluation/helpers.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_adv  # noqa: E402
from keras_adv.evaluation import planted  # noqa: E402
from keras_adv.models.presets import small_cnn  # noqa: E402
from tests.evaluation.helpers import RandomSearch  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def gradient_free(eps):
    square = getattr(keras_adv.attacks, "Square", None)
    if square is not None:
        return square(epsilon=eps, seed=0)
    return RandomSearch(eps, queries=100, seed=0, name="RandomSearch-100")


def train_plain(x, y, seed, width=32, epochs=15):
    keras.utils.set_random_seed(seed)
    m = small_cnn(width=width)
    m.compile(optimizer="adam", loss=SCE, metrics=["accuracy"])
    m.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return m


def train_adversarial(x, y, seed, eps=0.2, width=32, epochs=30):
    keras.utils.set_random_seed(seed)
    base = small_cnn(width=width)
    m = keras_adv.AdversarialModel(base, attack=keras_adv.attacks.PGD(eps, steps=7))
    m.compile(optimizer="adam", loss=SCE, metrics=["accuracy"])
    m.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return base


def main():
    os.makedirs(OUT, exist_ok=True)
    md = ["# Honest evaluation on digits (benchmarks/evaluation_demo.py)", ""]
    summary = {"diagnostics": [], "detection": []}
    (xt, yt), (xs, ys) = keras_adv.datasets.load_digits()
    t0 = time.time()
    undefended = train_plain(xt, yt, seed=0)
    undefended2 = train_plain(xt, yt, seed=1, width=16)
    robust = train_adversarial(xt, yt, seed=0)
    md.append(f"Models: small_cnn(width=32) trained 15 epochs (undefended), a second undefended "
              f"small_cnn(width=16, other seed), and small_cnn(width=32) adversarially trained with "
              f"`AdversarialModel` + PGD-7 at ε=0.2 for 30 epochs. Training took {time.time() - t0:.0f} s.")
    md.append(f"Gradient-free attack used by the diagnostics: {gradient_free(0.1).name}.")
    md.append("")

    # ---------------------------------------------------------------- diagnostics
    md += ["## Gradient-masking diagnostics (`diagnose_gradient_masking`, 200 test digits)", "",
           "Defaults: PGD-20 reference, PGD-100 × 3 restarts stronger attack, curve at ε/2, ε, 2ε, 1.0; "
           "tolerance 0.05 (0.1 for the more-steps check). Accuracies are on the 200 examples.", "",
           "| model | ε | clean | FGSM | PGD-20 | PGD-100×3 | PGD at ε=1 | gradient-free | checks fired | flagged | s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    x, y = xs[:200], ys[:200]
    models = {"undefended": undefended, "PGD-trained (ε=0.2)": robust}
    models.update({f"planted: {k}": v for k, v in planted.planted_set(undefended).items()})
    expect_flag = {k: k.startswith("planted") for k in models}
    all_ok = True
    for name, model in models.items():
        for eps in (0.1, 0.2):
            t = time.time()
            d = keras_adv.evaluation.diagnose_gradient_masking(model, x, y, eps, gradient_free_attack=gradient_free(eps))
            dt = time.time() - t
            m = d.measurements
            f = lambda k: "—" if k not in m else f"{m[k]:.3f}"  # noqa: E731
            at1 = "—" if "pgd_curve" not in m else f"{m['pgd_curve'][-1][1]:.3f}"
            ok = d.flagged == expect_flag[name]
            all_ok &= ok
            md.append(f"| {name} | {eps} | {m['clean_accuracy']:.3f} | {f('fgsm')} | {f('pgd')} | {f('pgd_strong')} "
                      f"| {at1} | {f('gradient_free')} | {', '.join(d.checks) or 'none'} | "
                      f"{'yes' if d.flagged else 'no'}{'' if ok else ' (WRONG)'} | {dt:.0f} |")
            summary["diagnostics"].append({"model": name, "epsilon": eps, "checks": list(d.checks),
                                           "flagged": bool(d.flagged), "expected_flag": bool(expect_flag[name])})
            print(name, eps, d.checks, f"{dt:.1f}s", flush=True)
    md += ["", f"Acceptance (every planted model flagged, undefended and PGD-trained not flagged, at both ε): "
           f"**{'PASS' if all_ok else 'FAIL'}**.",
           "Checks skipped by every run: " + ("; ".join(f"`{k}` ({v})" for k, v in d.skipped.items()) or "none") + ".", ""]

    # ---------------------------------------------------------------- reports
    eps_grid = [0.05, 0.1, 0.2, 0.3, 0.5]
    for label, model in [("undefended", undefended), ("pgd_trained", robust)]:
        attacks = {"FGSM": keras_adv.attacks.FGSM(0.1), "PGD-20": keras_adv.attacks.PGD(0.2, steps=20, seed=0),
                   "PGD-50x3": keras_adv.attacks.PGD(0.2, steps=50, restarts=3, seed=1)}
        t = time.time()
        report = keras_adv.evaluate_robustness(model, xs, ys, attacks=attacks, epsilons=eps_grid, verbose=0)
        dt = time.time() - t
        # The report equals the same attack called directly.
        direct = keras_adv.attacks.PGD(0.2, steps=20, seed=0).generate(model, xs, ys, verbose=0)
        direct_acc = float(np.mean(np.argmax(model.predict(direct, verbose=0), -1) == ys))
        report.plot(os.path.join(OUT, f"evaluation_{label}_curve.png"), title=f"{label}: robust accuracy vs ε")
        report.plot_examples(os.path.join(OUT, f"evaluation_{label}_examples.png"), attack="PGD-20", epsilon=0.2)
        md += [f"## `evaluate_robustness`: {label} ({len(xs)} test digits, {dt:.0f} s)", "", "```", str(report), "```", "",
               f"PGD-20 at ε=0.2 in the report: {report.robust_accuracy('PGD-20', 0.2):.4f}; the same attack called "
               f"directly (`PGD(0.2, steps=20, seed=0).generate`): {direct_acc:.4f} "
               f"({'equal' if direct_acc == report.robust_accuracy('PGD-20', 0.2) else 'DIFFERENT'}).", "",
               f"![curve](evaluation_{label}_curve.png) ![examples](evaluation_{label}_examples.png)", ""]

    # ---------------------------------------------------------------- transfer
    t = time.time()
    tm = keras_adv.evaluation.transfer_matrix(
        keras_adv.attacks.PGD(0.2, steps=20, seed=0),
        {"undefended": undefended, "undefended-2": undefended2, "pgd_trained": robust}, xs, ys)
    md += [f"## Transfer matrix (PGD-20, ε=0.2, {len(xs)} test digits, {time.time() - t:.0f} s)", "", "```", str(tm), "```",
           "", "Diagonal = white-box. Examples crafted on an undefended surrogate transfer to the other undefended "
           "model, and are *weaker* than white-box on the PGD-trained model (as expected of an honest defence).", ""]

    # ---------------------------------------------------------------- detection
    md += ["## Detect and reject (Metzen et al. 2017 detector on the penultimate features)", "",
           "Detector trained on PGD-10 examples (against the undefended classifier) of the 1,347 training digits, "
           "threshold calibrated to 5% false positives on the first 200 test digits, evaluated on the other 250. "
           "`fools system` = misclassified *and* not rejected, over clean-correct examples.", ""]
    x_cal, x_ev, y_ev = xs[:200], xs[200:], ys[200:]
    for eps in (0.1, 0.2):
        t = time.time()
        det = keras_adv.detection.train_detector(undefended, keras_adv.attacks.PGD(eps, steps=10, seed=0), xt, yt,
                                                 epochs=20)
        guarded = keras_adv.detection.RejectingModel(undefended, det)
        guarded.calibrate(x_cal, 0.05)
        rep = keras_adv.detection.evaluate_detection(guarded, x_ev, y_ev, attack=keras_adv.attacks.PGD(eps, steps=20, seed=1))
        strong = keras_adv.attacks.PGD(eps, steps=100, restarts=3, seed=2, loss=keras_adv.detection.adaptive_loss,
                                       name="PGD-100x3 adaptive")
        rep2 = keras_adv.detection.evaluate_detection(guarded, x_ev, y_ev, attack=keras_adv.attacks.PGD(eps, steps=20, seed=1),
                                                      adaptive_attack=strong)
        rep.results["adaptive PGD-20"] = rep.results.pop("adaptive")
        rep.results["adaptive PGD-100x3"] = rep2.results["adaptive"]
        md += [f"### ε = {eps} ({time.time() - t:.0f} s)", "", "```", str(rep), "```", ""]
        summary["detection"].append({"epsilon": eps, **{k: r["roc_auc"] for k, r in rep.results.items()}})
        print("detection", eps, rep.results, flush=True)

    summary["acceptance_pass"] = bool(all_ok)
    with open(os.path.join(OUT, "evaluation.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(OUT, "evaluation.json"), "w") as f:  # the README's numbers (benchmarks/readme.py)
        json.dump(summary, f, indent=2)
    print("\n".join(md))


if __name__ == "__main__":
    main()
