"""Attack-suite parity benchmark: keras_adv vs IBM ART (and cleverhans) on the same model and points.

Peers are benchmark-only dependencies (never runtime ones):

    pip install adversarial-robustness-toolbox
    pip install --no-deps cleverhans

Run from the repository root:

    PYTHONPATH=. python benchmarks/attack_parity.py            # full run (~15 min on 2 CPU cores)
    PYTHONPATH=. python benchmarks/attack_parity.py --quick    # smoke test
    PYTHONPATH=. /work/venvs/evalscale/bin/python benchmarks/attack_parity.py --autoattack --n 150
        # only AutoAttack vs ART's AutoAttack (benchmarks/results/autoattack_vs_art.{json,md})

The benchmark environment (peers see our TensorFlow; nothing is downgraded):

    python -m venv --system-site-packages /work/venvs/evalscale
    /work/venvs/evalscale/bin/pip install --no-deps adversarial-robustness-toolbox cleverhans multiprocess dill

Prints markdown tables and writes benchmarks/results/attack_parity.md (and the README's numbers
in attack_parity.json, rendered by benchmarks/readme.py).
Speeds are examples/second measured in this one run, after one warm-up call
(graph tracing excluded for keras_adv; ART has no tracing).
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
from keras_adv import attacks as A  # noqa: E402
from keras_adv.datasets import load_digits  # noqa: E402
from keras_adv.models.presets import small_cnn  # noqa: E402


def train_plain(x, y, epochs):
    keras.utils.set_random_seed(0)
    model = small_cnn((8, 8, 1), 10)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def train_adversarial(x, y, epochs):
    keras.utils.set_random_seed(1)
    base = small_cnn((8, 8, 1), 10, name="robust_cnn")
    model = ka.AdversarialModel(base, attack=A.PGD(0.2, steps=7), objective="madry", seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return base


def acc(model, x, y):
    return float(np.mean(model.predict(x, verbose=0, batch_size=512).argmax(1) == y))


def hit(model, x, t):
    return float(np.mean(model.predict(x, verbose=0, batch_size=512).argmax(1) == t))


def l2(a, b):
    return np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(1))


def ours(attack, model, x, y):
    """Runs a keras_adv attack in one tf.function; returns (x_adv, examples/s after a warm-up)."""
    fn = tf.function(lambda xx, yy, ss: attack(model, xx, yy, seed=ss))
    seed = tf.constant([0, 1], tf.int32)
    xt, yt = tf.constant(x), tf.constant(y)
    fn(xt, yt, seed)  # warm-up (tracing)
    t0 = time.perf_counter()
    out = fn(xt, yt, seed).numpy()
    return out, len(x) / (time.perf_counter() - t0)


def timed(fn, n):
    t0 = time.perf_counter()
    out = fn()
    return out, n / (time.perf_counter() - t0)


def art_classifier(model):
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(
        model, nb_classes=10, input_shape=(8, 8, 1), clip_values=(0.0, 1.0),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def autoattack_vs_art(n: int, epochs: int = 12, eps: float = 0.2):
    """keras_adv's AutoAttack against IBM ART's on one adversarially trained model and the same points.

    Interleaved: keras_adv (cold: a fresh attack object, tracing included), ART, keras_adv again
    (warm). Robust accuracy = correct clean AND under attack on the first `n` test digits.
    """
    import json

    from art.attacks.evasion import AutoAttack as ArtAutoAttack

    (x_train, y_train), (x_test, y_test) = load_digits()
    robust = train_adversarial(x_train, y_train, epochs)
    x, y = x_test[:n], y_test[:n]
    clean_ok = robust.predict(x, verbose=0).argmax(1) == y

    def robust_acc(xa):
        return float(np.mean(clean_ok & (robust.predict(xa, verbose=0).argmax(1) == y)))

    runs = {}
    t0 = time.perf_counter()
    xa = A.AutoAttack(eps, seed=0).generate(robust, x, y, batch_size=256, verbose=1)
    runs["keras_adv AutoAttack standard (cold: tracing included)"] = (robust_acc(xa), time.perf_counter() - t0)
    art = ArtAutoAttack(art_classifier(robust), norm=np.inf, eps=eps, eps_step=eps / 4, batch_size=n)
    t0 = time.perf_counter()
    xa = art.generate(x, y=y)
    runs["IBM ART AutoAttack (defaults)"] = (robust_acc(xa), time.perf_counter() - t0)
    warm = A.AutoAttack(eps, seed=0)
    warm.generate(robust, x[:8], y[:8], verbose=0)  # tracing
    t0 = time.perf_counter()
    xa = warm.generate(robust, x, y, batch_size=256, verbose=0)
    runs["keras_adv AutoAttack standard (warm)"] = (robust_acc(xa), time.perf_counter() - t0)
    art_acc, art_s = runs["IBM ART AutoAttack (defaults)"]
    cold_acc, cold_s = runs["keras_adv AutoAttack standard (cold: tracing included)"]
    result = {
        "benchmark": "autoattack_vs_art",
        "model": f"digits small_cnn, PGD-7 adversarial training (madry, ε={eps}), {epochs} epochs",
        "points": f"first {n} test digits", "epsilon": eps, "norm": "linf",
        "clean_accuracy": float(clean_ok.mean()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), TF {tf.__version__}",
        "keras_adv_members": "APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries); 100 steps",
        "art_members": "APGD-CE ×5 restarts, APGD-DLR ×5 restarts, DeepFool, Square 5000 queries ×5 restarts",
        "runs": [{"run": k, "robust_accuracy": a, "seconds": s} for k, (a, s) in runs.items()],
        "speedup_cold_vs_art": art_s / cold_s,
        "robust_accuracy_le_art": cold_acc <= art_acc,
    }
    lines = ["# AutoAttack: keras_adv vs IBM ART", "",
             f"{result['model']}; {result['points']} (clean accuracy {result['clean_accuracy']:.3f}); "
             f"L∞ ε={eps}; {result['machine']}. Robust accuracy counts a point only if it is correct clean "
             "and under attack. Runs interleaved in this order.", "",
             f"keras_adv members: {result['keras_adv_members']}. ART defaults: {result['art_members']}.", "",
             "| run | robust accuracy | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {a:.3f} | {s:.1f} |" for k, (a, s) in runs.items()]
    lines += ["", f"Speed-up (ART time / keras_adv cold time, tracing included): **{result['speedup_cold_vs_art']:.1f}×**; "
              f"robust accuracy keras_adv {cold_acc:.3f} vs ART {art_acc:.3f} "
              f"({'≤ ART: at least as strong' if cold_acc <= art_acc else 'ABOVE ART: weaker'})."]
    text = "\n".join(lines)
    print(text)
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/autoattack_vs_art.json", "w") as f:
        json.dump(result, f, indent=2)
    with open("benchmarks/results/autoattack_vs_art.md", "w") as f:
        f.write(text + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--autoattack", action="store_true", help="only AutoAttack vs ART's AutoAttack")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    if args.autoattack:
        return autoattack_vs_art(args.n)
    q = args.quick
    n = 40 if q else args.n
    cw_steps, cw_bss = (20, 3) if q else (50, 5)
    n_cw = n if q else min(n, 100)  # ART's C&W runs at ~1 example/s here
    sq_queries = 100 if q else 1000
    aa_steps, aa_queries = (10, 100) if q else (100, 5000)
    eps_inf, eps_l2, eps_l1 = 0.2, 1.5, 6.0

    (x_train, y_train), (x_test, y_test) = load_digits()
    model = train_plain(x_train, y_train, 3 if q else 10)
    clean = acc(model, x_test, y_test)
    # The first n test points the undefended model classifies correctly.
    keep = np.flatnonzero(model.predict(x_test, verbose=0).argmax(1) == y_test)[:n]
    x, y = x_test[keep], y_test[keep]
    target = (y + 1) % 10
    summary = {"points": int(n), "clean_accuracy": clean, "undefended": {}}  # the README's numbers
    lines = [
        "# Attack-suite parity (keras_adv vs ART / cleverhans)", "",
        f"Digits 8×8: the first {n} test points the undefended `small_cnn` classifies correctly "
        f"(its clean test accuracy: {clean:.3f}); success rates are over these points. "
        f"{platform.processor() or platform.machine()}, TF {tf.__version__}, {os.cpu_count()} CPUs (shared). "
        "Speeds: examples/s in this run, after one warm-up call.", "",
    ]

    def emit(*rows):
        for r in rows:
            print(r)
            lines.append(r)

    # ------------------------------------------------ 1. success rates of every attack
    emit("## 1. Every attack on the undefended CNN", "",
         f"Budgets: L∞ ε={eps_inf}, L2 ε={eps_l2}, L1 ε={eps_l1}; targeted target = (y+1) mod 10.", "",
         "| attack | untargeted success | robust acc | targeted success | ex/s (untargeted) |",
         "|---|---|---|---|---|")
    table = [
        ("FGSM L∞", lambda t: A.FGSM(eps_inf, targeted=t)),
        ("PGD-20 L∞", lambda t: A.PGD(eps_inf, steps=20, targeted=t)),
        ("PGD-20 L2", lambda t: A.PGD(eps_l2, steps=20, norm="l2", targeted=t)),
        ("PGD-50 L1", lambda t: A.PGD(eps_l1, steps=50, norm="l1", step_size=1.0, targeted=t)),
        (f"C&W L2 ({cw_bss}×{cw_steps}, unbounded)", lambda t: A.CarliniWagnerL2(
            steps=cw_steps, binary_search_steps=cw_bss, learning_rate=0.05, targeted=t)),
        ("Spatial grid (±30°, ±2 px; 7×5×5)", lambda t: A.SpatialTransformation(
            30.0, 2.0, n_rotations=7, n_translations=5, targeted=t)),
        ("Spatial first-order (10 steps)", lambda t: A.SpatialTransformation(
            30.0, 2.0, method="first_order", steps=10, targeted=t)),
        ("APGD-CE L∞", lambda t: A.APGD(eps_inf, steps=aa_steps, targeted=t)),
        ("APGD-DLR L∞", lambda t: A.APGD(eps_inf, loss="dlr", steps=aa_steps, targeted=t)),
        ("APGD-T (DLR, 9 targets) L∞", None),
        ("APGD-CE L2", lambda t: A.APGD(eps_l2, steps=aa_steps, norm="l2", targeted=t)),
        (f"Square L∞ ({sq_queries} q)", lambda t: A.Square(eps_inf, queries=sq_queries, targeted=t)),
        (f"Square L2 ({sq_queries} q)", lambda t: A.Square(eps_l2, queries=sq_queries, norm="l2", targeted=t)),
        ("FAB-T L∞ (ε-capped)", lambda t: A.FAB(eps_inf, steps=aa_steps, targeted=t)),
        ("AutoAttack L∞ standard", None),
    ]
    for name, make in table:
        if make is None and name.startswith("APGD-T"):
            a = A.APGD(eps_inf, loss="dlr", steps=aa_steps, n_target_classes=9)
        elif make is None:
            a = A.AutoAttack(eps_inf, steps=aa_steps, queries=aa_queries)
        else:
            a = make(False)
        xa, speed = ours(a, model, x, y)
        ra = acc(model, xa, y)
        untargeted = float(np.mean(model.predict(xa, verbose=0).argmax(1) != y))
        if make is not None:
            xt, _ = ours(make(True), model, x, target)
            targeted = f"{hit(model, xt, target):.3f}"
        else:
            targeted = "n/a (untargeted by design)"
        emit(f"| {name} | {untargeted:.3f} | {ra:.3f} | {targeted} | {speed:.1f} |")
        summary["undefended"][name] = {"untargeted_success": untargeted, "robust_accuracy": ra,
                                       "examples_per_s": speed}
        print(flush=True)

    # ------------------------------------------------ 2. parity with peers
    emit("", "## 2. Parity with peer implementations (same model, same points)", "")
    clf = art_classifier(model)
    from art.attacks.evasion import CarliniL2Method, SpatialTransformation as ArtSpatial, SquareAttack

    # C&W L2
    emit(f"### C&W L2, {cw_bss} binary-search steps × {cw_steps} iterations, κ=0", "")
    x_all, y_all = x, y
    x, y = x[:n_cw], y[:n_cw]
    emit(f"On the first {n_cw} points.", "",
         "| implementation | success | mean L2 of successes | median L2 | ex/s |", "|---|---|---|---|---|")
    cw_rows = {}
    for label, lr in (("keras_adv CarliniWagnerL2 (lr 0.01, the paper's)", 0.01), ("keras_adv CarliniWagnerL2 (lr 0.05, default)", 0.05)):
        xa, speed = ours(A.CarliniWagnerL2(steps=cw_steps, binary_search_steps=cw_bss, learning_rate=lr), model, x, y)
        cw_rows[label] = (xa, speed)
    art_cw = CarliniL2Method(clf, max_iter=cw_steps, binary_search_steps=cw_bss, batch_size=n_cw, verbose=False)
    art_cw.generate(x[:2], y=y[:2])
    cw_rows["ART CarliniL2Method (defaults, lr 0.01)"] = timed(lambda: art_cw.generate(x, y=y), n_cw)
    try:
        from cleverhans.tf2.attacks.carlini_wagner_l2 import CarliniWagnerL2 as ChCW

        class _Keras3Adam:
            """cleverhans calls `optimizer.variables()`; Keras 3 made it a property."""

            def __init__(self, learning_rate):
                self._opt = keras.optimizers.Adam(learning_rate)

            def variables(self):
                return self._opt.variables

            def apply_gradients(self, grads_and_vars):
                return self._opt.apply_gradients(grads_and_vars)

        def ch():
            attack = ChCW(model, y=tf.constant(y), batch_size=n_cw, binary_search_steps=cw_bss,
                          max_iterations=cw_steps, clip_min=0.0, clip_max=1.0)
            attack.optimizer = _Keras3Adam(attack.learning_rate)
            return np.asarray(attack.attack(tf.constant(x)))
        cw_rows["cleverhans carlini_wagner_l2 (defaults, lr 0.005)"] = timed(ch, n_cw)
    except Exception as e:  # pragma: no cover - reported, not hidden
        emit(f"(cleverhans C&W failed: {type(e).__name__}: {e})")
    cw_stats = {}
    for label, (xa, speed) in cw_rows.items():
        ok = model.predict(xa, verbose=0).argmax(1) != y
        d = l2(xa, x)
        cw_stats[label] = (ok.mean(), d[ok].mean() if ok.any() else float("nan"), speed)
        emit(f"| {label} | {ok.mean():.3f} | {cw_stats[label][1]:.4f} | "
             f"{np.median(d[ok]) if ok.any() else float('nan'):.4f} | {speed:.1f} |")
    # Same-points comparison of distances (points both succeed on).
    ours_x = cw_rows["keras_adv CarliniWagnerL2 (lr 0.05, default)"][0]
    art_x = cw_rows["ART CarliniL2Method (defaults, lr 0.01)"][0]
    both = (model.predict(ours_x, verbose=0).argmax(1) != y) & (model.predict(art_x, verbose=0).argmax(1) != y)
    common_ratio = l2(ours_x, x)[both].mean() / l2(art_x, x)[both].mean() if both.any() else float("nan")
    if both.any():
        emit("", f"On the {both.sum()} points both keras_adv (default) and ART break: mean L2 keras_adv "
                 f"{l2(ours_x, x)[both].mean():.4f} vs ART {l2(art_x, x)[both].mean():.4f} "
                 f"(ratio {common_ratio:.3f}). Means over each one's own successes are not comparable "
                 "when the success rates differ: the extra points an attack breaks are the harder ones.")

    x, y = x_all, y_all

    # Square
    emit("", f"### Square L∞ ε={eps_inf}, {sq_queries} queries, p_init 0.8", "",
         "| implementation | robust accuracy | ex/s |", "|---|---|---|")
    xa, speed = ours(A.Square(eps_inf, queries=sq_queries), model, x, y)
    sq_ours = acc(model, xa, y)
    emit(f"| keras_adv Square | {sq_ours:.3f} | {speed:.1f} |")
    sq_speed = speed
    art_sq = SquareAttack(clf, norm=np.inf, eps=eps_inf, max_iter=sq_queries, p_init=0.8, batch_size=n, verbose=False)
    xa, speed = timed(lambda: art_sq.generate(x, y=y), n)
    sq_art = acc(model, xa, y)
    emit(f"| ART SquareAttack | {sq_art:.3f} | {speed:.1f} |")
    sq_art_speed = speed
    xa, speed = ours(A.Square(eps_l2, queries=sq_queries, norm="l2"), model, x, y)
    sq2_ours = acc(model, xa, y)
    art_sq2 = SquareAttack(clf, norm=2, eps=eps_l2, max_iter=sq_queries, p_init=0.8, batch_size=n, verbose=False)
    xb, speed2 = timed(lambda: art_sq2.generate(x, y=y), n)
    emit(f"| keras_adv Square L2 ε={eps_l2} | {sq2_ours:.3f} | {speed:.1f} |",
         f"| ART SquareAttack L2 ε={eps_l2} | {acc(model, xb, y):.3f} | {speed2:.1f} |")

    # Spatial grid
    emit("", "### Spatial grid: rotations ±30° (7 values) × translations ±2 px (5 values per axis)", "",
         "| implementation | worst-case accuracy | ex/s |", "|---|---|---|")
    xa, speed = ours(A.SpatialTransformation(30.0, 2.0, n_rotations=7, n_translations=5), model, x, y)
    sp_ours = acc(model, xa, y)
    emit(f"| keras_adv SpatialTransformation (per-example worst) | {sp_ours:.3f} | {speed:.1f} |")
    sp_speed = speed
    art_sp = ArtSpatial(clf, max_translation=25.0, num_translations=5, max_rotation=30.0, num_rotations=7, verbose=False)
    xa, speed = timed(lambda: art_sp.generate(x, y=y), n)
    sp_art = acc(model, xa, y)
    emit(f"| ART SpatialTransformation (one transform for the batch) | {sp_art:.3f} | {speed:.1f} |")
    sp_art_speed = speed

    # ------------------------------------------------ 3. AutoAttack on an adversarially trained model
    emit("", f"## 3. AutoAttack vs PGD-50×3 on an adversarially trained model (PGD-7, ε={eps_inf}, L∞)", "")
    robust = train_adversarial(x_train, y_train, 3 if q else 12)
    r_clean = acc(robust, x, y)  # on the same points (all correct for the undefended model)
    rows = [
        ("PGD-50, 3 restarts", A.PGD(eps_inf, steps=50, restarts=3)),
        ("APGD-CE only", A.APGD(eps_inf, steps=aa_steps)),
        ("AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square)", A.AutoAttack(eps_inf, steps=aa_steps, queries=aa_queries)),
    ]
    emit(f"Clean accuracy of the robust model: {r_clean:.3f}.", "",
         "| evaluation | robust accuracy | ex/s |", "|---|---|---|")
    aa_results = {}
    for label, a in rows:
        xa, speed = ours(a, robust, x, y)
        aa_results[label] = acc(robust, xa, y)
        emit(f"| {label} | {aa_results[label]:.3f} | {speed:.1f} |")
    try:
        from art.attacks.evasion import AutoAttack as ArtAutoAttack

        art_aa = ArtAutoAttack(art_classifier(robust), norm=np.inf, eps=eps_inf, eps_step=eps_inf / 4,
                               batch_size=n)
        xa, speed = timed(lambda: art_aa.generate(x, y=y), n)
        aa_results["ART AutoAttack (defaults)"] = acc(robust, xa, y)
        emit(f"| ART AutoAttack (defaults) | {aa_results['ART AutoAttack (defaults)']:.3f} | {speed:.1f} |")
    except Exception as e:  # pragma: no cover
        emit(f"(ART AutoAttack failed: {type(e).__name__}: {e})")

    # ------------------------------------------------ acceptance summary
    ours_cw = cw_stats["keras_adv CarliniWagnerL2 (lr 0.05, default)"]
    art_cw_s = cw_stats["ART CarliniL2Method (defaults, lr 0.01)"]
    emit("", "## Acceptance", "",
         f"- CW-L2 success ≥ ART's: {ours_cw[0]:.3f} vs {art_cw_s[0]:.3f} → "
         f"{'PASS' if ours_cw[0] >= art_cw_s[0] else 'MISS'}; mean L2 ≤ 1.05× ART's on the points both break: "
         f"ratio {common_ratio:.3f} → {'PASS' if common_ratio <= 1.05 else 'MISS'} (over each one's own successes: "
         f"{ours_cw[1]:.4f} vs {art_cw_s[1]:.4f}, ratio {ours_cw[1] / art_cw_s[1]:.3f}, "
         f"{'within' if ours_cw[1] <= 1.05 * art_cw_s[1] else 'NOT within'} 1.05×)",
         f"- Square robust acc ≤ ART + 0.02: {sq_ours:.3f} vs {sq_art:.3f} → {'PASS' if sq_ours <= sq_art + 0.02 else 'MISS'}",
         f"- Spatial grid worst-case acc ≤ ART's: {sp_ours:.3f} vs {sp_art:.3f} → {'PASS' if sp_ours <= sp_art else 'MISS'}",
         f"- AutoAttack ≤ PGD-50×3: {aa_results[rows[2][0]]:.3f} vs {aa_results[rows[0][0]]:.3f} → "
         f"{'PASS' if aa_results[rows[2][0]] <= aa_results[rows[0][0]] else 'MISS'}")
    summary.update({
        "cw": {"points": int(n_cw), "success": float(ours_cw[0]), "art_success": float(art_cw_s[0]),
               "mean_l2_ratio_on_common": float(common_ratio), "speed_vs_art": ours_cw[2] / art_cw_s[2]},
        "square": {"queries": sq_queries, "robust_accuracy": sq_ours, "art_robust_accuracy": sq_art,
                   "speed_vs_art": sq_speed / sq_art_speed},
        "spatial_grid": {"robust_accuracy": sp_ours, "art_robust_accuracy": sp_art,
                         "speed_vs_art": sp_speed / sp_art_speed},
        "pgd_trained": {"clean_accuracy": r_clean, "pgd50x3": aa_results[rows[0][0]],
                        "autoattack": aa_results[rows[2][0]],
                        "art_autoattack": aa_results.get("ART AutoAttack (defaults)")},
    })
    if not q:
        os.makedirs("benchmarks/results", exist_ok=True)
        with open("benchmarks/results/attack_parity.md", "w") as f:
            f.write("\n".join(lines) + "\n")
        with open("benchmarks/results/attack_parity.json", "w") as f:  # the README's numbers (readme.py)
            json.dump(summary, f, indent=2, default=float)


if __name__ == "__main__":
    main()
