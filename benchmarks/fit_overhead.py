"""AdversarialModel.fit against the cost floor: a plain tf.function loop doing the same work.

Both sides run PGD-K (random start, K input-gradient passes in a tf.while_loop) against the
current weights, then one weight update on L_clean + λ·L_adv, on the same model, data, batches and
optimizer. The plain loop is the one a user writes by hand: two training forwards (clean, then
adversarial). `fit` with its defaults (on CPU: two passes too; on a GPU/TPU: one concatenated batch,
`fuse_passes`) is the headline; `fit` with the other choice of `fuse_passes` is timed too, to show
what fusing does here. After a warm-up epoch each, a callback times every fit epoch and then runs
and times one plain-loop epoch and one `fit(epochs=1)` call of the other variant (which also pays
fit's per-call set-up), so the sides interleave epoch by epoch and see the same machine
load. The ratio of median epoch times is the headline; the ratio of minima (least disturbed by
other load) is printed beside it. Measured at two model widths: the fixed per-step costs (Keras'
fit loop, metrics) weigh more on the smaller model. Writes benchmarks/results/fit_overhead.{md,json}.

    python benchmarks/fit_overhead.py [--steps 7] [--epochs 15] [--batch-size 64] [--widths 32,96]
                                      [--steps-per-execution 8]

A fourth side is fit compiled with `steps_per_execution` (Keras' own option: several steps per graph
call), the remedy for fit's fixed per-step cost on small models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402


def plain_loop(base, dataset, eps, steps, lam, optimizer, jit_compile=False):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    alpha = 2.5 * eps / steps
    seed = tf.Variable([0, 0], dtype=tf.int32)

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        seed.assign_add([1, 0])
        delta = tf.random.stateless_uniform(tf.shape(x), seed, -eps, eps)
        x_adv0 = tf.clip_by_value(x + delta, 0.0, 1.0)

        def body(i, xa):
            with tf.GradientTape() as t:
                t.watch(xa)
                loss = tf.reduce_sum(per_example(y, base(xa, training=False)))
            g = t.gradient(loss, xa)
            xa = x + tf.clip_by_value(xa + alpha * tf.sign(g) - x, -eps, eps)
            return i + 1, tf.clip_by_value(xa, 0.0, 1.0)

        _, x_adv = tf.while_loop(lambda i, _: i < steps, body, (0, x_adv0))
        x_adv = tf.stop_gradient(x_adv)
        with tf.GradientTape() as tape:
            total = loss_fn(y, base(x, training=True)) + lam * loss_fn(y, base(x_adv, training=True))
        grads = tape.gradient(total, base.trainable_variables)
        optimizer.apply_gradients(zip(grads, base.trainable_variables))
        return total

    def epoch():
        for x, y in dataset:
            step(x, y)
    return epoch


class EpochTimer(keras.callbacks.Callback):
    """The time of the epoch itself (from its first to its last batch), not of `fit`'s set-up."""

    def __init__(self, times):
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def fit_epoch(model, dataset, callbacks=()):
    """One `fit` epoch's own time (fit's per-call set-up excluded, as a plain loop has none).

    `callbacks` run after the timer's, so their epoch-end work is not timed.
    """
    times = []
    model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[EpochTimer(times), *callbacks])
    return times[0]


def measure(width, steps, epochs, batch_size, x, y, steps_per_execution=8):
    """Median and minimum epoch times of fit and of the plain loop, interleaved epoch by epoch."""
    eps, lam = 0.2, 1.0
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache().prefetch(2)
    keras.utils.set_random_seed(0)
    base_a = ka.models.presets.small_cnn(width=width)
    model = ka.AdversarialModel(base_a, attack=ka.attacks.PGD(epsilon=eps, steps=steps), adv_weight=lam)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    keras.utils.set_random_seed(0)
    base_b = ka.models.presets.small_cnn(width=width)
    loop_epoch = plain_loop(base_b, dataset, eps, steps, lam, keras.optimizers.Adam(1e-3))
    keras.utils.set_random_seed(0)
    base_c = ka.models.presets.small_cnn(width=width)
    unfused = ka.AdversarialModel(base_c, attack=ka.attacks.PGD(epsilon=eps, steps=steps), adv_weight=lam,
                                  fuse_passes=not model._fuses())
    unfused.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    assert model._fuses() != unfused._fuses()
    keras.utils.set_random_seed(0)
    base_d = ka.models.presets.small_cnn(width=width)
    looped = ka.AdversarialModel(base_d, attack=ka.attacks.PGD(epsilon=eps, steps=steps), adv_weight=lam)
    looped.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"], steps_per_execution=steps_per_execution)

    model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing
    loop_epoch()
    unfused.fit(dataset, epochs=1, verbose=0)
    looped.fit(dataset, epochs=1, verbose=0)
    # Interleaved epoch by epoch, one after the other (never a fit inside another fit's callback, which
    # measured the outer fit 3x slower than it runs alone), so all sides see the same machine load.
    fit_times, loop_times, unfused_times, spe_times = [], [], [], []
    fit_timer, unfused_timer, spe_timer = EpochTimer(fit_times), EpochTimer(unfused_times), EpochTimer(spe_times)
    # The position in a round changes an epoch's time by up to ~40% on this 2-core CPU (measured: the
    # same fit read 0.61x the loop when run before it and 1.25x when run after it), so the order
    # rotates every round and each side runs in every position equally often.
    def run_loop():
        t0 = time.perf_counter()
        loop_epoch()
        loop_times.append(time.perf_counter() - t0)

    sides = [lambda: model.fit(dataset, epochs=1, verbose=0, callbacks=[fit_timer]), run_loop,
             lambda: unfused.fit(dataset, epochs=1, verbose=0, callbacks=[unfused_timer]),
             lambda: looped.fit(dataset, epochs=1, verbose=0, callbacks=[spe_timer])]
    for r in range(epochs):
        for k in range(len(sides)):
            sides[(r + k) % len(sides)]()
    return fit_times, loop_times, unfused_times, spe_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=15, help="timed epochs per side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--widths", default="32,96", help="small_cnn widths to measure")
    parser.add_argument("--steps-per-execution", type=int, default=8,
                        help="steps_per_execution of the fourth side (compile's option: k steps per graph call)")
    args = parser.parse_args()
    (x, y), _ = ka.datasets.load_digits()
    fused_default = ka.AdversarialModel(ka.models.presets.small_cnn(width=8),
                                        attack=ka.attacks.FGSM(epsilon=0.1))._fuses()
    lines = [
        f"# AdversarialModel.fit vs plain tf.function loop (PGD-{args.steps}, digits {len(x)} train, "
        f"batch {args.batch_size})",
        "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, Keras {keras.__version__}; "
        f"{args.epochs} epochs per side, fit, loop, other-fuse fit and steps_per_execution fit epochs interleaved one by one (sequentially, each fit epoch its own fit call, the order rotating every round).",
        "",
        "| model | fit median epoch (s) | loop median epoch (s) | **fit / loop** (medians) | fit / loop (minima) "
        f"| fit fuse_passes={not fused_default} / loop (medians) "
        f"| fit steps_per_execution={args.steps_per_execution} / loop (medians) |",
        "|---|---|---|---|---|---|---|",
    ]
    record = {"fit_fuses_by_default": fused_default, "steps_per_execution": args.steps_per_execution,
              "steps": args.steps, "epochs": args.epochs, "batch_size": args.batch_size,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "tensorflow": tf.__version__,
              "keras": keras.__version__, "models": []}
    for width in [int(w) for w in args.widths.split(",")]:
        t_fit, t_loop, t_unfused, t_spe = measure(width, args.steps, args.epochs, args.batch_size, x, y,
                                                  args.steps_per_execution)
        med_fit, med_loop, med_unf, med_spe = (statistics.median(t) for t in (t_fit, t_loop, t_unfused, t_spe))
        params = ka.models.presets.small_cnn(width=width).count_params()
        row = {"model": f"small_cnn width {width}", "weights": params, "fit_median_s": med_fit,
               "loop_median_s": med_loop, "other_fuse_fit_median_s": med_unf,
               "ratio_median": med_fit / med_loop, "ratio_min": min(t_fit) / min(t_loop),
               "other_fuse_ratio_median": med_unf / med_loop, "steps_per_execution_fit_median_s": med_spe,
               "steps_per_execution_ratio_median": med_spe / med_loop}
        record["models"].append(row)
        lines.append(
            f"| small_cnn width {width} ({params:,} weights) | {med_fit:.3f} | {med_loop:.3f} "
            f"| **{row['ratio_median']:.3f}** | {row['ratio_min']:.3f} | {row['other_fuse_ratio_median']:.3f} "
            f"| {row['steps_per_execution_ratio_median']:.3f} |"
        )
    lines += ["", "Target: fit / loop <= 1.0. Both sides do PGD-K with a random start (K input-gradient passes in "
              "a tf.while_loop) and one update of L_clean + λ·L_adv. The loop runs the clean and adversarial "
              f"training forwards as two passes, as written by hand; fit by default here "
              f"{'fuses them into one concatenated batch' if fused_default else 'runs two passes too (CPU)'}. "
              "fit also updates the loss trackers, accuracy, adv_accuracy and robustness_margin. The last "
              "columns are fit with the other fuse_passes choice, and fit compiled with steps_per_execution (Keras runs "
              "that many steps in one graph call: the same work with fewer Python round trips). Each fit epoch is its own fit(epochs=1) call, "
              "timed from its first to its last batch (fit's set-up excluded, as the loop has none)."]
    text = "\n".join(lines)
    print(text)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fit_overhead")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(text + "\n")
    with open(out + ".json", "w") as f:
        json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
