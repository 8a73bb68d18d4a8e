"""Numerical safety under load: a long mixed-precision adversarial training run on digits.

Trains `AdversarialModel` (PGD-3, ε = 0.1 on [0, 1] pixels, ε ramp over the first epochs, λ schedule)
with `keras.mixed_precision` policy `mixed_float16` for many epochs on scikit-learn's digits and
records, every epoch:

* whether any logged value or weight is NaN/inf, and the loss scale of the LossScaleOptimizer;
* the resident memory of the process (RSS, from /proc/self/statm), in MiB;
* the tracing count of Keras' train and test functions (retracing must not grow with epochs;
  the ε/λ schedules change variables, not Python values).

Run from the repository root (outside the test suite):

    PYTHONPATH=. python benchmarks/long_run_stability.py --epochs 200   # the full run
    PYTHONPATH=. python benchmarks/long_run_stability.py --epochs 5     # smoke

Writes benchmarks/results/long_run_stability.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


TRACES = {"train": 0, "test": 0}


def count_traces(model):
    """The Python body of a step runs only while tf.function traces it: counting calls counts traces."""
    train_step, test_step = model.train_step, model.test_step

    def traced_train_step(data):
        TRACES["train"] += 1
        return train_step(data)

    def traced_test_step(data):
        TRACES["test"] += 1
        return test_step(data)

    model.train_step, model.test_step = traced_train_step, traced_test_step


class Monitor(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        weights_finite = all(np.isfinite(w).all() for w in self.model.base_model.get_weights())
        logs_finite = all(np.isfinite(v) for v in logs.values() if isinstance(v, (int, float)))
        scale = getattr(self.model.optimizer, "dynamic_scale", None)
        self.rows.append({
            "epoch": epoch,
            "rss_mib": round(rss_mib(), 1),
            "epsilon": round(self.model.epsilon, 4),
            "loss": float(logs["loss"]),
            "adv_accuracy": float(logs.get("adv_accuracy", np.nan)),
            "val_accuracy": float(logs.get("val_accuracy", np.nan)),
            "finite": bool(weights_finite and logs_finite),
            "loss_scale": None if scale is None else float(keras.ops.convert_to_numpy(scale)),
            "train_traces": TRACES["train"],
            "test_traces": TRACES["test"],
            "seconds": round(time.perf_counter() - self.t0, 2),
        })


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(RESULTS, "long_run_stability"))
    args = parser.parse_args()

    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
    base = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
        keras.layers.Activation("linear", dtype="float32"),  # float32 logits
    ])
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=3, step_size=0.04), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    count_traces(model)
    monitor = Monitor()
    start_rss = rss_mib()
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0,
              validation_data=(x_val, y_val), validation_freq=10,
              callbacks=[ka.callbacks.EpsilonRamp(ramp_epochs=5),
                         ka.callbacks.AdvWeightSchedule(lambda e: 1.0 if e < 100 else 0.5),
                         monitor])
    rows = monitor.rows
    rss = np.array([r["rss_mib"] for r in rows])
    half = len(rss) // 2
    summary = {
        "epochs": len(rows),
        "policy": "mixed_float16",
        "all_finite": all(r["finite"] for r in rows),
        "rss_mib_before_fit": round(start_rss, 1),
        "rss_mib_epoch_1": float(rss[0]),
        "rss_mib_last": float(rss[-1]),
        "rss_mib_max": float(rss.max()),
        "rss_growth_second_half_mib": round(float(rss[-1] - rss[half]), 1) if len(rss) > 2 else 0.0,
        "rss_slope_second_half_mib_per_epoch": round(float(np.polyfit(np.arange(len(rss) - half), rss[half:], 1)[0]), 4)
        if len(rss) - half >= 2 else 0.0,
        "train_traces_first_epoch": rows[0]["train_traces"],
        "train_traces_last_epoch": rows[-1]["train_traces"],
        "test_traces_last_epoch": rows[-1]["test_traces"],
        "final_loss": rows[-1]["loss"],
        "final_val_accuracy": next((r["val_accuracy"] for r in reversed(rows) if np.isfinite(r["val_accuracy"])),
                                   None),
        "max_rss_kib_getrusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "seconds": rows[-1]["seconds"],
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"summary": summary, "per_epoch": rows}, f, indent=1)
    lines = ["# Long-run stability (mixed_float16, PGD-3 adversarial training on digits)", "",
             f"Produced by `benchmarks/long_run_stability.py --epochs {args.epochs}`.", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items()]
    lines += ["", "| epoch | RSS MiB | loss | finite | loss scale | train traces |", "|---|---|---|---|---|---|"]
    step = max(1, len(rows) // 20)
    for r in rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else []):
        lines.append(f"| {r['epoch'] + 1} | {r['rss_mib']} | {r['loss']:.4f} | {r['finite']} | {r['loss_scale']} | "
                     f"{r['train_traces']} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:len(summary) + 6]))


if __name__ == "__main__":
    main()
