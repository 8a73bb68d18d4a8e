"""keras_adv on a GPU: what XLA, fused passes and mixed precision do there, measured, never assumed.

Run on a machine with a GPU (on CPU the figures mean nothing; the script says so and stops):

    python benchmarks/gpu.py [--quick]

Four parts, each timed with the implementations interleaved round by round (for fit, the order
rotating each round), medians reported:

1. PGD-10 throughput (examples/s) on the digits CNN and the CIFAR-size CNN, batch 256: the plain
   `tf.function` loop (the floor) and the same loop under XLA, `attack.generate`, the eager call,
   the user's `tf.function` with and without `jit_compile=True`, cleverhans and IBM ART where
   installed (`attack_throughput.implementations`).
2. `AdversarialModel.fit` (PGD-7, λ = 1) against the plain same-work loop and the same loop under
   XLA: fit with its defaults (graph mode: the wrapper resolves Keras' `jit_compile="auto"`, which
   picks XLA for the whole step on a GPU, to False, because XLA drops the step's input checks), fit
   with the attack loop under XLA (`jit_compile_attack=True`), and with `--fit-full` fit without
   fused passes. Digits `small_cnn` widths 32 and 96 (batch 64), and the CIFAR-size CNN (batch 128,
   random data: speed does not depend on it).
3. Mixed precision: fit epoch time under `mixed_float16` and `mixed_bfloat16` against float32 on the
   CIFAR-size CNN, and on digits the clean and PGD-20 accuracy each policy trains to.
4. The input checks on the GPU: a batch with a label out of range, and one with NaN pixels, in a
   `tf.data` stream, through `fit` with the defaults and with `jit_compile_attack=True`: each must
   raise the named error and leave the weights as they were.

XLA compiles once per function and shape; on the GPU the first call took minutes (autotuning), so
each part runs in its own process here (`--parts`). `python benchmarks/gpu.py --render` rewrites
the .md from the .json.

Writes benchmarks/results/gpu.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack_throughput  # noqa: E402
import fit_overhead  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def device_info():
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    return {"gpus": names, "tensorflow": tf.__version__, "keras": keras.__version__,
            "cuda": tf.sysconfig.get_build_info().get("cuda_version"),
            "cudnn": tf.sysconfig.get_build_info().get("cudnn_version"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores"}


def interleave(sides, epochs):
    """Runs each side's epoch `epochs` times, the order rotating each round; per-side epoch times.

    A side that returns a number reports its own epoch time (a `fit` epoch without fit's set-up)."""
    for fn in sides.values():  # warm-up: tracing and compilation
        fn()
    times = {k: [] for k in sides}
    labels = list(sides)
    for r in range(epochs):
        for k in range(len(labels)):
            label = labels[(r + k) % len(labels)]
            t0 = time.perf_counter()
            own = sides[label]()
            times[label].append(own if isinstance(own, float) else time.perf_counter() - t0)
    return times


def adversarial(base, steps, **kwargs):
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.2, steps=steps), adv_weight=1.0, **kwargs)
    model.compile(keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"])
    return model


def fit_sides(make_base, dataset, steps, epochs, full=True):
    """fit variants and the plain loops (graph and XLA), interleaved; epoch times and the resolved options."""
    def built(**kwargs):
        keras.utils.set_random_seed(0)
        return adversarial(make_base(), steps, **kwargs)

    default = built()
    variants = {
        "fit, defaults": default,
        "fit, jit_compile_attack=True": built(jit_compile_attack=True),
    }
    if full:
        variants["fit, fuse_passes=False"] = built(fuse_passes=False)
    sides = {label: (lambda m=m: fit_overhead.fit_epoch(m, dataset)) for label, m in variants.items()}
    for label, jit in (("plain tf.function loop", False), ("plain tf.function loop, XLA", True)):
        keras.utils.set_random_seed(0)
        sides[label] = fit_overhead.plain_loop(make_base(), dataset, 0.2, steps, 1.0, keras.optimizers.Adam(1e-3),
                                               jit_compile=jit)
    times = interleave(sides, epochs)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [{"side": k, "median_epoch_s": med[k], "min_epoch_s": min(times[k]),
             "vs_loop": med[k] / med["plain tf.function loop"],
             "vs_loop_xla": med[k] / med["plain tf.function loop, XLA"]} for k in sides]
    resolved = {"jit_compile": default.jit_compile, "fuses": default._fuses()}
    return rows, resolved


def mixed_precision(quick):
    """Epoch time per policy on the CIFAR-size CNN; clean and PGD-20 accuracy per policy on digits."""
    n = 1024 if quick else 8192
    rng = np.random.default_rng(0)
    xc = rng.uniform(0, 1, (n, 32, 32, 3)).astype("float32")
    yc = rng.integers(0, 10, n)
    ds = tf.data.Dataset.from_tensor_slices((xc, yc)).batch(128).cache().prefetch(2)
    (x, y), (xt, yt) = ka.datasets.load_digits()
    dsd = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048, seed=0).batch(64).prefetch(2)
    policies = ["float32", "mixed_float16", "mixed_bfloat16"]
    speed, trained = {}, {}
    for policy in policies:
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            speed[policy] = adversarial(ka.models.presets.small_cnn((32, 32, 3), width=64), 7)
            keras.utils.set_random_seed(0)
            trained[policy] = adversarial(ka.models.presets.small_cnn(width=32), 7)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    times = interleave({p: (lambda m=m: fit_overhead.fit_epoch(m, ds)) for p, m in speed.items()},
                       2 if quick else 6)
    judge = ka.attacks.PGD(epsilon=0.2, steps=20, seed=0)
    rows = []
    for p in policies:
        history = trained[p].fit(dsd, epochs=2 if quick else 20, verbose=0)
        base = trained[p].base_model
        clean = float(np.mean(np.argmax(base.predict(xt, verbose=0), -1) == yt))
        x_adv = judge.generate(base, xt, yt, verbose=0)
        robust = float(np.mean(np.argmax(base.predict(x_adv, verbose=0), -1) == yt))
        rows.append({"policy": p, "median_epoch_s": statistics.median(times[p]),
                     "vs_float32": statistics.median(times[p]) / statistics.median(times["float32"]),
                     "digits_clean": clean, "digits_pgd20": robust,
                     "final_loss": float(history.history["loss"][-1])})
    return rows


def checks_on_gpu(cases_n=2):
    """A bad batch in a stream through fit (defaults, then the attack under XLA): the named error, the
    weights untouched?"""
    (x, y), _ = ka.datasets.load_digits()
    x, y = x[:256].copy(), y[:256].copy()
    y_bad = y.copy()
    y_bad[100] = 12
    x_bad = x.copy()
    x_bad[70] = np.nan
    cases = {}
    for name, (xs, ys) in list({"label out of range": (x, y_bad), "NaN pixels": (x_bad, y)}.items())[:cases_n]:
        for option in ({}, {"jit_compile_attack": True}):
            keras.utils.set_random_seed(0)
            model = adversarial(ka.models.presets.small_cnn(width=8), 3, **option)
            model.build((None, 8, 8, 1))
            before = [w.numpy().copy() for w in model.base_model.weights]
            try:
                model.fit(tf.data.Dataset.from_tensor_slices((xs, ys)).batch(64), epochs=1, verbose=0)
                error = None
            except Exception as e:  # reported either way
                error = f"{type(e).__name__}: {str(e)[:160]}"
            after = model.base_model.weights
            cases[f"{name}, {option or 'defaults'}"] = {
                "raised": error, "jit_compile": model.jit_compile,
                "weights_unchanged": all(np.array_equal(b, a.numpy()) for b, a in zip(before, after)),
                "weights_finite": all(bool(np.isfinite(a.numpy()).all()) for a in after)}
    return cases


def render(record):
    """The .md of a .json record: only what the record holds."""
    dev = record["device"]
    lines = [f"# keras_adv on a GPU ({', '.join(dev['gpus']) or 'no GPU'})", "",
             f"TensorFlow {dev['tensorflow']} (CUDA {dev['cuda']}, cuDNN {dev['cudnn']}), Keras {dev['keras']}, "
             f"{dev['machine']}. XLA_FLAGS: `{record.get('xla_flags') or '(none)'}`.", ""]
    for m in record.get("throughput", []):
        lines += [f"## PGD-10 throughput, {m['model']} {tuple(m['input_shape'])}, batch 256, "
                  f"{m['examples']} examples, median of {m['rounds']} rounds", "",
                  "| implementation | examples/s | vs plain loop | vs IBM ART | first call (s) |", "|---|---|---|---|---|"]
        lines += [f"| {r['implementation']} | {r['examples_per_s']:,.0f} | {r['vs_floor']:.2f}x | {r['vs_art']:.1f}x "
                  f"| {r['first_call_s']:.1f} |" for r in m["rows"]]
        lines.append("")
    for m in record.get("fit", []):
        lines += [f"## fit, {m['model']} (defaults resolve to {m['defaults_resolve_to']})", "",
                  "| side | median epoch (s) | vs plain loop | vs plain loop under XLA |", "|---|---|---|---|"]
        lines += [f"| {r['side']} | {r['median_epoch_s']:.3f} | {r['vs_loop']:.2f} | {r['vs_loop_xla']:.2f} |"
                  for r in m["rows"]]
        lines.append("")
    if record.get("mixed_precision"):
        lines += ["## Mixed precision", "", "| policy | median epoch (s) | vs float32 | digits clean | digits PGD-20 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['policy']} | {r['median_epoch_s']:.3f} | {r['vs_float32']:.2f} | {r['digits_clean']:.3f} "
                  f"| {r['digits_pgd20']:.3f} |" for r in record["mixed_precision"]]
        lines.append("")
    if record.get("checks"):
        lines += ["## Input checks on the GPU", "", "| case | jit_compile | raised | weights unchanged |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {v['jit_compile']} | {v['raised'] or 'nothing'} | {v['weights_unchanged']} |"
                  for k, v in record["checks"].items()]
        lines.append("")
    for note in record.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not figures)")
    parser.add_argument("--parts", default="throughput,fit,mixed,checks")
    parser.add_argument("--out", help="output file stem (default benchmarks/results/gpu)")
    parser.add_argument("--batches", type=int, default=16, help="throughput: batches of 256 per timed call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=7, help="fit: timed epochs per side")
    parser.add_argument("--fit-models", default="digits32,digits96,cifar32")
    parser.add_argument("--check-cases", type=int, default=2)
    parser.add_argument("--fit-full", action="store_true", help="fit: also the side without fused passes")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args()
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "gpu")
    if args.render:
        with open((args.out or default_out) + ".json") as f:
            record = json.load(f)
        with open((args.out or default_out) + ".md", "w") as f:
            f.write(render(record))
        return
    info = device_info()
    print(json.dumps(info))
    if not info["gpus"] and not args.quick:
        sys.exit("No GPU visible to TensorFlow: these figures are only meaningful on a GPU.")
    parts = args.parts.split(",")
    record = {"device": info, "quick": args.quick}
    out = args.out or default_out
    record["xla_flags"] = os.environ.get("XLA_FLAGS", "")

    def save():
        with open(out + ".json", "w") as f:
            json.dump(record, f, indent=2)
        with open(out + ".md", "w") as f:
            f.write(render(record))

    if "throughput" in parts:
        n, rounds = (512, 2) if args.quick else (256 * args.batches, args.rounds)
        record["throughput"] = [attack_throughput.bench(name, shape, n, rounds, xla=True)
                                for name, shape in (("digits_cnn", (8, 8, 1)), ("cifar_size_cnn", (32, 32, 3)))]
        save()
    if "fit" in parts:
        (x, y), _ = ka.datasets.load_digits()
        reps = 1 if args.quick else 4
        digits = tf.data.Dataset.from_tensor_slices((np.tile(x, (reps, 1, 1, 1)), np.tile(y, reps)))
        digits = digits.batch(64).cache().prefetch(2)
        rng = np.random.default_rng(0)
        n = 512 if args.quick else 4096
        cifar = tf.data.Dataset.from_tensor_slices((rng.uniform(0, 1, (n, 32, 32, 3)).astype("float32"),
                                                    rng.integers(0, 10, n))).batch(128).cache().prefetch(2)
        epochs = 2 if args.quick else args.epochs
        record["fit"] = []
        models = {"digits32": ("digits small_cnn width 32", lambda: ka.models.presets.small_cnn(width=32), digits),
                  "digits96": ("digits small_cnn width 96", lambda: ka.models.presets.small_cnn(width=96), digits),
                  "cifar32": ("CIFAR-size small_cnn width 32",
                              lambda: ka.models.presets.small_cnn((32, 32, 3), width=32), cifar)}
        for key in args.fit_models.split(","):
            label, make, ds = models[key]
            rows, resolved = fit_sides(make, ds, 7, epochs, full=args.fit_full)
            record["fit"].append({"model": label, "rows": rows, "defaults_resolve_to": resolved})
            save()
    if "mixed" in parts:
        record["mixed_precision"] = mixed_precision(args.quick)
        save()
    if "checks" in parts:
        record["checks"] = checks_on_gpu(args.check_cases)
        save()
    print(render(record))


if __name__ == "__main__":
    main()
