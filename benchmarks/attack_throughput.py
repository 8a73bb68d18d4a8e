"""PGD-10 throughput (examples/s): keras_adv against the cost floor, cleverhans and IBM ART, in one run.

The cost floor is a plain `tf.function` graph loop doing the same work as PGD-10 L∞ (uniform
random start, 10 sign-gradient steps of the cross-entropy, projection and clipping), compiled once.
Every implementation attacks the same model, the same batches (batch 256) with the same ε and step
size; each is timed after one warm-up call (tracing excluded for the graph-mode entries, reported
separately for keras_adv's eager call), and the timings are interleaved round by round so all see the
same machine load; the median round is reported. keras_adv's entries and the peers' run in separate
fresh processes, each beside the same floor (ratios are taken within a process; in one shared process
the peers slowed every TF graph timed after them), and the pair of processes is repeated
(`--processes`, the order rotating): the figures are the medians over them. Two models: the digits `small_cnn` (8×8×1) and the
CIFAR-size `small_cnn((32, 32, 3))` (random weights: throughput does not depend on them).

keras_adv entries:
  * `generate`: `attack.generate(model, x, y, batch_size=256)` (numpy in, numpy out);
  * `eager call`: `attack(model, x, y)` called eagerly, batch by batch;
  * `tf.function`: the user's own `tf.function(lambda x, y: attack(model, x, y))`.

Peers are benchmark-only dependencies (never runtime ones), in a venv that sees our TensorFlow:

    python -m venv --system-site-packages /work/venvs/evalscale
    /work/venvs/evalscale/bin/pip install --no-deps adversarial-robustness-toolbox cleverhans multiprocess dill
    PYTHONPATH=. /work/venvs/evalscale/bin/python benchmarks/attack_throughput.py [--rounds 3] [--batches 4] [--processes 3]

Writes benchmarks/results/attack_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402
from keras_adv.models.presets import small_cnn  # noqa: E402

EPS, STEPS, BATCH = 0.1, 10, 256
STEP_SIZE = 2.5 * EPS / STEPS


def plain_loop(model, jit_compile=False):
    """The cost floor: PGD-10 as one tf.function with a tf.while_loop (`jit_compile`: the same under XLA)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @tf.function(jit_compile=jit_compile)
    def run(x, y, seed):
        x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(tf.shape(x), seed, -EPS, EPS), 0.0, 1.0)

        def body(i, x_adv):
            with tf.GradientTape() as tape:
                tape.watch(x_adv)
                loss = loss_fn(y, model(x_adv, training=False))
            g = tape.gradient(loss, x_adv)
            x_adv = x_adv + STEP_SIZE * tf.sign(g)
            x_adv = tf.clip_by_value(tf.clip_by_value(x_adv, x - EPS, x + EPS), 0.0, 1.0)
            return i + 1, x_adv

        return tf.while_loop(lambda i, _: i < STEPS, body, (0, x_adv))[1]

    return run


OURS, PEERS = "keras_adv", "peers"


def implementations(model, x, y, input_shape, group=None, xla=False):
    """The timed implementations: the floor, then keras_adv's (group OURS) and/or the peers' (group PEERS).

    `xla=True` adds the floor and the user's tf.function compiled with XLA (`jit_compile=True`)."""
    attack = ka.attacks.PGD(EPS, steps=STEPS, step_size=STEP_SIZE, seed=0)
    floor = plain_loop(model)
    batches = [(tf.constant(x[i:i + BATCH]), tf.constant(y[i:i + BATCH])) for i in range(0, len(x), BATCH)]
    seed = tf.constant([1, 2], tf.int32)
    compiled = tf.function(lambda xb, yb: attack(model, xb, yb, seed=seed))
    out = {
        "plain tf.function loop (floor)": lambda: [floor(xb, yb, seed).numpy() for xb, yb in batches],
        "keras_adv generate": lambda: attack.generate(model, x, y, batch_size=BATCH, verbose=0),
        "keras_adv eager call attack(model, x, y)": lambda: [attack(model, xb, yb).numpy() for xb, yb in batches],
        "keras_adv in the user's tf.function": lambda: [compiled(xb, yb).numpy() for xb, yb in batches],
    }
    if xla:
        floor_xla = plain_loop(model, jit_compile=True)
        compiled_xla = tf.function(lambda xb, yb: attack(model, xb, yb, seed=seed), jit_compile=True)
        out["plain tf.function loop, XLA"] = lambda: [floor_xla(xb, yb, seed).numpy() for xb, yb in batches]
        out["keras_adv in the user's tf.function(jit_compile=True)"] = lambda: [
            compiled_xla(xb, yb).numpy() for xb, yb in batches]
    if group == PEERS:
        out = {k: v for k, v in out.items() if k == "plain tf.function loop (floor)"}
    if group == OURS:
        return out
    try:
        from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

        out["cleverhans projected_gradient_descent (eager)"] = lambda: [
            projected_gradient_descent(model, xb, EPS, STEP_SIZE, STEPS, np.inf, clip_min=0.0, clip_max=1.0,
                                       y=yb, rand_init=True, sanity_checks=False).numpy()
            for xb, yb in batches]
    except ImportError as e:  # reported, not hidden
        print(f"cleverhans unavailable: {e}")
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import TensorFlowV2Classifier

        clf = TensorFlowV2Classifier(model, nb_classes=10, input_shape=input_shape, clip_values=(0.0, 1.0),
                                     loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        art = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=STEP_SIZE, max_iter=STEPS,
                                       num_random_init=1, batch_size=BATCH, verbose=False)
        out["IBM ART ProjectedGradientDescent"] = lambda: art.generate(x, y=y)
    except ImportError as e:
        print(f"ART unavailable: {e}")
    return out


def bench(name, input_shape, n, rounds, rotate=0, group=None, xla=False):
    keras.utils.set_random_seed(0)
    model = small_cnn(input_shape, 10, name=name)
    rng = np.random.default_rng(0)
    if input_shape == (8, 8, 1):
        _, (xs, ys) = ka.datasets.load_digits()
        idx = rng.integers(0, len(xs), n)
        x, y = xs[idx], ys[idx]
    else:
        x = rng.uniform(0, 1, (n,) + input_shape).astype("float32")
        y = rng.integers(0, 10, n).astype("int64")
    impls = implementations(model, x, y, input_shape, group, xla)
    labels = list(impls)  # the order (tracing first, then each round) rotates with the process
    impls = {label: impls[label] for label in labels[rotate % len(labels):] + labels[:rotate % len(labels)]}
    first = {}
    for label, fn in impls.items():  # warm-up: tracing and first-call costs
        t0 = time.perf_counter()
        fn()
        first[label] = time.perf_counter() - t0
    times = {label: [] for label in impls}
    for _ in range(rounds):
        for label, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    floor = statistics.median(times["plain tf.function loop (floor)"])
    art = statistics.median(times.get("IBM ART ProjectedGradientDescent", [float("nan")]))
    rows = []
    for label, ts in times.items():
        med = statistics.median(ts)
        rows.append({"implementation": label, "examples_per_s": n / med, "median_s": med, "min_s": min(ts),
                     "first_call_s": first[label], "vs_floor": floor / med, "vs_art": art / med})
    return {"model": name, "input_shape": list(input_shape), "examples": n, "rounds": rounds, "rows": rows}


def one_process(n, rounds, rotate, group=None):
    return [bench("digits_cnn", (8, 8, 1), n, rounds, rotate, group),
            bench("cifar_size_cnn", (32, 32, 3), n, rounds, rotate, group)]


def join(ours, peers):
    """One process pair's figures: keras_adv's rows and the peers' rows, each timed beside its own floor.

    Ratios to the floor are taken within each process; a keras_adv row's ratio to ART is its ratio to the
    floor divided by ART's ratio to the floor (the floor is the same graph in both processes)."""
    joined = []
    for m_ours, m_peers in zip(ours, peers):
        art = next((r for r in m_peers["rows"] if r["implementation"].startswith("IBM ART")), None)
        art_vs_floor = art["vs_floor"] if art else float("nan")
        rows = [dict(r, vs_art=r["vs_floor"] / art_vs_floor) for r in m_ours["rows"]]
        rows += [r for r in m_peers["rows"] if r["implementation"] != "plain tf.function loop (floor)"]
        joined.append(dict(m_ours, rows=rows))
    return joined


def merge(runs):
    """Per model and implementation: the median over processes of each process's figures, and the per-process ratios."""
    models = []
    for per_model in zip(*runs):
        first = per_model[0]
        rows = []
        for label in [r["implementation"] for r in first["rows"]]:
            got = [next(r for r in m["rows"] if r["implementation"] == label) for m in per_model]
            row = {"implementation": label}
            for key in ("examples_per_s", "median_s", "min_s", "first_call_s", "vs_floor", "vs_art"):
                row[key] = statistics.median(g[key] for g in got)
            row["vs_floor_per_process"] = [g["vs_floor"] for g in got]
            row["vs_art_per_process"] = [g["vs_art"] for g in got]
            rows.append(row)
        models.append({**{k: first[k] for k in ("model", "input_shape", "examples", "rounds")},
                       "processes": len(per_model), "rows": rows})
    return models


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--processes", type=int, default=3,
                        help="rounds of two fresh processes (keras_adv's implementations in one, the peers' in the "
                             "other, each beside the floor; the order rotating from one round to the next); the "
                             "figures are the medians over rounds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # (internal: one process's run, written here)
    parser.add_argument("--rotate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--group", choices=(OURS, PEERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    n = BATCH * (1 if args.quick else args.batches)
    if args.single:
        with open(args.single, "w") as f:
            json.dump(one_process(n, rounds, args.rotate, args.group), f)
        return
    processes = 1 if args.quick else args.processes
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(processes):
            parts = {}
            for group in (OURS, PEERS):  # the peers in a process of their own: they slow TF graphs run after them
                path = os.path.join(tmp, f"run{k}_{group}.json")
                command = [sys.executable, os.path.abspath(__file__), "--single", path, "--rotate", str(k),
                           "--group", group, "--rounds", str(rounds), "--batches", str(args.batches)]
                subprocess.run(command + (["--quick"] if args.quick else []), check=True)
                with open(path) as f:
                    parts[group] = json.load(f)
            runs.append(join(parts[OURS], parts[PEERS]))
    results = {
        "benchmark": "attack_throughput",
        "attack": f"PGD-{STEPS} L∞, ε={EPS}, step {STEP_SIZE:g}, batch {BATCH}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), TF {tf.__version__}, "
                   f"Keras {keras.__version__}",
        "processes": processes,
        "models": merge(runs),
    }
    lines = ["# Attack throughput: PGD-10 (examples/s)", "",
             f"{results['attack']}; {results['machine']}. {processes} rounds of two fresh processes, one timing "
             "keras_adv's implementations and one the peers' (cleverhans, IBM ART), each beside the same plain-loop "
             "floor (timed in one process with the peers, the TF graphs run after them slowed unevenly). In each process (the order of the "
             f"implementations rotating from one round to the next): median of {rounds} interleaved rounds after "
             "a warm-up call; `first call` includes tracing. Ratios: time of the floor (or ART) / time of the row, "
             "within a process (× ART of a keras_adv row: its ratio to the floor over ART's), the table shows the median over processes and, for × plain loop, each process's "
             "ratio (on this 2-core machine the same graph's speed moves by up to ~30% from one process to the next).",
             ""]
    for m in results["models"]:
        lines += [f"## {m['model']} {tuple(m['input_shape'])}, {m['examples']} examples", "",
                  "| implementation | examples/s | × plain loop | (per process) | × ART | first call (s) |",
                  "|---|---|---|---|---|---|"]
        for r in m["rows"]:
            per = ", ".join(f"{v:.2f}" for v in r["vs_floor_per_process"])
            lines.append(f"| {r['implementation']} | {r['examples_per_s']:.0f} | {r['vs_floor']:.2f} | {per} | "
                         f"{r['vs_art']:.2f} | {r['first_call_s']:.2f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        os.makedirs("benchmarks/results", exist_ok=True)
        with open("benchmarks/results/attack_throughput.json", "w") as f:
            json.dump(results, f, indent=2)
        with open("benchmarks/results/attack_throughput.md", "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
