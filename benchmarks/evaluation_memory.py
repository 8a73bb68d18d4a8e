"""Memory of `evaluate_robustness`: flat over streams of any size, and no model kept alive between calls.

1. Streaming: in a fresh subprocess per size, `evaluate_robustness` (FGSM and PGD-3 at ε=0.1,
   diagnostics on) over a generated `tf.data` stream of 1×, 10× and 100× the digits test set (the 450
   test images repeated; the stream never materialises them). Peak resident memory
   (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) per size; the growth from 1× to 100× is compared
   with the size of the data (100× the test set as float32 images).
2. Models kept alive (issue 13): in one subprocess, 20 calls of `evaluate_robustness` on fresh
   9.2M-parameter models (issue 13 used 9.6M), each dropped after its call; resident memory (VmRSS) after every call.
   Run on this tree and, with `--before PATH`, on an older checkout for comparison.

    PYTHONPATH=. python benchmarks/evaluation_memory.py [--before /path/to/old/tree]

Writes benchmarks/results/evaluation_memory.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

STREAM = """
import os, resource, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras, tensorflow as tf
import keras_adv as ka
from keras_adv.models.presets import small_cnn
(xt, yt), (xs, ys) = ka.datasets.load_digits()
keras.utils.set_random_seed(0)
model = small_cnn()
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(xt, yt, epochs=2, batch_size=64, verbose=0)
k = {k}
ds = (tf.data.Dataset.range(k)
      .flat_map(lambda _: tf.data.Dataset.from_tensor_slices((xs, ys)))
      .batch(256))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = ka.evaluate_robustness(model, ds, attacks={{"fgsm": ka.attacks.FGSM(0.1),
                                                     "pgd": ka.attacks.PGD(0.1, steps=3, seed=0)}},
                                verbose=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"repeats": k, "examples": report.num_examples, "peak_rss_mib": peak / 1024,
                  "rss_before_evaluation_mib": base / 1024,
                  "data_mib": report.num_examples * xs[0].nbytes / 2**20,
                  "robust_accuracy_pgd": report.robust_accuracy("pgd", 0.1)}}))
"""

MODELS = """
import os, gc, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
import keras_adv as ka
(xt, yt), (xs, ys) = ka.datasets.load_digits()

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

out = []
for i in range(20):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3000, activation="relu"),
                              keras.layers.Dense(3000, activation="relu"), keras.layers.Dense(10)])
    params = model.count_params()
    ka.evaluate_robustness(model, xs[:64], ys[:64], attacks={"fgsm": ka.attacks.FGSM(0.1)}, verbose=0, diagnose=False)
    del model
    gc.collect()
    out.append(rss())
print(json.dumps({"params": params, "rss_mib_after_each_call": out}))
"""


def run(code, root):
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=root, timeout=1800)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=None, help="an older checkout to measure the model-cache leak on")
    parser.add_argument("--repeats", default="1,10,100")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    streams = [run(STREAM.format(k=int(k)), root) for k in args.repeats.split(",")]
    models = {"this tree": run(MODELS, root)}
    if args.before:
        models["before (" + args.before + ")"] = run(MODELS, os.path.abspath(args.before))
    small, big = streams[0], streams[-1]
    growth = big["peak_rss_mib"] - small["peak_rss_mib"]
    extra_data = big["data_mib"] - small["data_mib"]
    result = {"benchmark": "evaluation_memory", "streams": streams, "models": models,
              "growth_mib": growth, "extra_data_mib": extra_data, "flat": growth < extra_data}
    lines = ["# Memory of evaluate_robustness", "",
             "## Streaming a generated tf.data set (FGSM + PGD-3, diagnostics on)", "",
             "| stream | examples | data (MiB) | peak RSS (MiB) |", "|---|---|---|---|"]
    lines += [f"| {s['repeats']}× digits test set | {s['examples']} | {s['data_mib']:.1f} | {s['peak_rss_mib']:.1f} |"
              for s in streams]
    lines += ["", f"Peak RSS grows by {growth:.1f} MiB from {small['repeats']}× to {big['repeats']}× while the data "
              f"grows by {extra_data:.1f} MiB: {'less than the data (flat)' if result['flat'] else 'NOT less than the data'}.",
              "", "## 20 evaluations of fresh 9.2M-parameter models (issue 13 used 9.6M), each dropped after its call", "",
              "| code | params | RSS after call 1 | after call 10 | after call 20 (MiB) |", "|---|---|---|---|---|"]
    for label, m in models.items():
        r = m["rss_mib_after_each_call"]
        lines.append(f"| {label} | {m['params']} | {r[0]:.0f} | {r[9]:.0f} | {r[-1]:.0f} |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(root, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(root, "benchmarks/results/evaluation_memory.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(root, "benchmarks/results/evaluation_memory.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
