"""Interleaved per-epoch timing of Fast-AT, Free-AT and TRADES vs PGD-7 training (robust to load drift).

The full `recipes.py` run times each recipe once, minutes apart, so load changes on
a shared machine move the ratios. Here the recipes' epochs alternate
(PGD-7, Fast-AT, PGD-7, Fast-AT, ...) after a warm-up epoch each, and the
ratio of median epoch times is reported, plus the guard's cost per check. TRADES (β=4, PGD-7)
is timed as `fit` runs it (the attack's clean target taken from the training forward, where the
model allows: `AdversarialModel._reuses_clean_forward`) and with that reuse switched off (a
separate clean pass, as before), the same model and data.

    PYTHONPATH=. python benchmarks/recipes_timing.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adv as ka  # noqa: E402
from keras_adv.models.presets import small_cnn  # noqa: E402

EPS = 0.2


def _model(attack, cls=ka.AdversarialModel, objective="madry", **kw):
    keras.utils.set_random_seed(0)
    m = cls(small_cnn((8, 8, 1), 10, width=96), attack=attack, objective=objective, seed=0, **kw)
    m.compile(optimizer=keras.optimizers.Adam(2e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return m


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "recipes_timing.md"))
    args = parser.parse_args(argv)
    (x, y), _ = ka.datasets.load_digits()
    models = {
        "madry_pgd7": _model(ka.attacks.PGD(epsilon=EPS, steps=7)),
        "fast_at": _model(ka.attacks.FGSM(EPS, random_start=True, step_size=1.25 * EPS)),
        "free_m4": _model(ka.attacks.FGSM(EPS), cls=ka.FreeAdversarialModel, replays=4),
        "trades_pgd7": _model(ka.attacks.PGD(epsilon=EPS, steps=7), objective="trades", adv_weight=4.0),
        "trades_pgd7_two_clean": _model(ka.attacks.PGD(epsilon=EPS, steps=7), objective="trades", adv_weight=4.0),
    }
    assert models["trades_pgd7"]._reuses_clean_forward(x[:1])
    models["trades_pgd7_two_clean"]._reuses_clean_forward = lambda x: False  # the step before the reuse
    guard = ka.callbacks.CatastrophicOverfittingGuard((x[-128:], y[-128:]), verbose=0)
    guard.set_model(models["fast_at"])
    guard.on_train_begin()
    times = {k: [] for k in models}
    guard_times = []
    for r in range(args.rounds + 1):
        for name, m in models.items():
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=64, epochs=1, verbose=0)
            if r:  # round 0 is the warm-up (tracing)
                times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        guard.on_epoch_end(r, {})
        if r:
            guard_times.append(time.perf_counter() - t0)
    ref = float(np.median(times["madry_pgd7"]))
    lines = [f"Interleaved timing, {args.rounds} rounds after a warm-up, digits, width 96, batch 64, median epoch "
             "time (s) on a shared 2-core CPU; a recipe's time = median epoch × its epochs (recipes.py settings).",
             "", "| recipe | median epoch (s) | fastest epoch (s) | epochs | est. training time (s) | "
             "vs PGD-7 (30 epochs) |", "|---|---|---|---|---|---|"]
    g = float(np.median(guard_times))
    # (row, timed model, extra seconds per epoch, epochs); the fastest epoch is shown where the row is one model's
    rows = [("madry_pgd7", "madry_pgd7", 0.0, 30), ("fast_at_noguard (FGSM-RS)", "fast_at", 0.0, 15),
            ("fast_at (+ guard: 128 examples, PGD-10, every 2nd epoch)", "fast_at", g / 2, 15),
            ("fast_at_30ep (+ guard)", "fast_at", g / 2, 30), ("free_m4 (epoch of 4 replays)", "free_m4", 0.0, 8),
            ("trades_pgd7 (β=4; clean target from the training forward)", "trades_pgd7", 0.0, 30),
            ("trades_pgd7, separate clean pass for the target (before)", "trades_pgd7_two_clean", 0.0, 30)]
    for name, key, extra, ep in rows:
        med = float(np.median(times[key])) + extra
        low = "" if extra else f"{min(times[key]):.2f}"
        lines.append(f"| {name} | {med:.2f} | {low} | {ep} | {med * ep:.0f} | {med * ep / (ref * 30):.2f}× |")
    lines.append(f"| (one guard check) | {g:.2f} | | | | |")
    lines += ["", "Epoch times on this machine cluster at a few values (the same epoch takes ~1.7 s or ~2.6 s from "
              "one round to the next), so medians move in steps; the fastest epoch is shown beside them."]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
