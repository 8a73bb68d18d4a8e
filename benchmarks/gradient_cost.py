"""Where one attack step's time goes: the input gradient on the CIFAR-size CNN, in a graph and eagerly.

Issue 12 asks for PGD-10 at >= 3x IBM ART's throughput on the CIFAR-size CNN; attack_throughput.md measures
keras_adv at 1.00x a plain `tf.function` loop doing the same steps, and that loop at 1.89x ART. This script
shows why the gap stops there. One PGD step is one input gradient (a forward and a backward pass with
respect to the input, not the weights). It times, interleaved round by round (median of `--rounds`) on the
same model, batch and labels:

  * `graph`: the input gradient inside a `tf.function` (what keras_adv's attacks and the plain loop run);
  * `eager`: the same `tf.GradientTape` code run eagerly;
  * `ART loss_gradient`: IBM ART's `TensorFlowV2Classifier.loss_gradient`, which its PGD calls once per step
    (only when ART is importable: run it with the benchmark venv's Python, see attack_throughput.py).

Each is then profiled once (`tf.profiler`) and its kernel time summed per op type. In a graph, TensorFlow
prunes the weight gradients nobody reads; eagerly, each layer's registered gradient runs in full, so every
convolution also computes its filter gradient (`Conv2DBackpropFilter`).

    PYTHONPATH=. /work/venvs/evalscale/bin/python benchmarks/gradient_cost.py [--rounds 5]

Writes benchmarks/results/gradient_cost.{md,json}.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_adv.models.presets import small_cnn  # noqa: E402

BATCH = 256
OPS = ("Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv2D", "MaxPoolGrad", "MaxPool", "MatMul", "BiasAdd", "Relu",
       "ReluGrad")


def entries(model, x, y):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    def input_gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(y, model(x, training=False))
        return tape.gradient(loss, x)

    graph = tf.function(input_gradient)
    xt, yt = tf.constant(x), tf.constant(y)
    out = {"graph": lambda: graph(xt, yt).numpy(), "eager": lambda: input_gradient(xt, yt).numpy()}
    try:
        from art.estimators.classification import TensorFlowV2Classifier
    except ImportError:
        return out
    art = TensorFlowV2Classifier(model, nb_classes=10, input_shape=x.shape[1:], loss_object=loss_fn,
                                 clip_values=(0.0, 1.0))
    onehot = np.eye(10, dtype=np.float32)[y]  # ART's classifiers take one-hot labels
    out["ART loss_gradient"] = lambda: art.loss_gradient(x, onehot)
    return out


def op_times(fn):
    """Kernel milliseconds per op type of one call of `fn`, from a `tf.profiler` trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        fn()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                # graph kernels are named "layer/op:OpType", eager ones "EagerLocalExecute: OpType"
                op_type = plane.event_metadata[event.metadata_id].name.split(":")[-1].strip()
                if op_type in OPS or op_type.startswith("_Fused"):
                    totals[op_type] += event.duration_ps / 1e9
    return {k: round(v, 1) for k, v in totals.most_common()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/gradient_cost")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model = small_cnn((32, 32, 3), 10)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    fns = entries(model, x, y)
    grads = {name: np.asarray(fn()) for name, fn in fns.items()}  # warm-up (tracing), and the same result
    for name, g in grads.items():
        np.testing.assert_allclose(g, grads["graph"], rtol=1e-4, atol=1e-5, err_msg=name)
    times = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    rows = {name: {"seconds": round(median[name], 4), "x_graph": round(median[name] / median["graph"], 2),
                   "op_ms": op_times(fn)} for name, fn in fns.items()}
    result = {"model": "small_cnn((32, 32, 3)), random weights", "batch": BATCH, "rounds": args.rounds,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}", "entries": rows}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)

    ops = [op for op in OPS + tuple(sorted({k for r in rows.values() for k in r["op_ms"] if k.startswith("_Fused")}))
           if any(op in r["op_ms"] for r in rows.values())]
    lines = [
        "# One attack step's cost: the input gradient, in a graph and eagerly",
        "",
        f"{result['model']}, batch {BATCH}; {result['machine']}. Median of {args.rounds} interleaved rounds; "
        "op times (ms) from one profiled call each (kernels only; `_Fused*` are forward convolutions and "
        "dense layers fused with their bias and activation). Written by `benchmarks/gradient_cost.py`.",
        "",
        "| computation | seconds | × graph | kernels listed (ms) | " + " | ".join(ops) + " |",
        "|---|---|---|---|" + "---|" * len(ops),
    ]
    for name, r in rows.items():
        cells = [str(r["op_ms"].get(op, "—")) for op in ops]
        total = sum(r["op_ms"].values())
        lines.append(f"| {name} | {r['seconds']:.3f} | {r['x_graph']:.2f} | {total:.0f} | " + " | ".join(cells) + " |")
    if "ART loss_gradient" in rows:
        art, graph = rows["ART loss_gradient"], rows["graph"]
        kernels = sum(graph["op_ms"].values())
        lines += [
            "",
            f"ART's step takes {art['x_graph']:.2f}× the graph's. Of its kernels, "
            f"{art['op_ms'].get('Conv2DBackpropFilter', 0):.0f} ms are `Conv2DBackpropFilter` (the convolutions' "
            "weight gradients, which the attack never reads and the graph prunes); its dense layers' weight "
            "gradients and unfused bias and activation kernels add the rest. For keras_adv to run at 3× ART, "
            f"the graph's step would have to take {art['seconds'] / 3:.3f} s, "
            f"{100 * art['seconds'] / 3 / (kernels / 1000):.0f}% of the {kernels:.0f} ms of kernels an input "
            "gradient needs (backprop to the input, the forward pass, max-pool gradients).",
        ]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
