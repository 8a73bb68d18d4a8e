"""AdversarialModel.fit against the cost floor: a plain tf.function loop doing the same work.

Both sides run PGD-K (random start, K input-gradient passes in a tf.while_loop) against the
current weights, then one weight update on L_clean + λ·L_adv with two training forwards, on the
same model, data, batches and optimizer. Rounds alternate (fit for E epochs, loop for E epochs, ...)
after a warm-up epoch each, so both see the same machine load. Fit epochs are timed by a callback
inside one `fit` call per round (the cost a user pays per epoch); the ratio of medians is the
headline, the ratio of minima (least disturbed by other load) is printed beside it.

    python benchmarks/fit_overhead.py [--steps 7] [--epochs 7] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402


def plain_loop(base, dataset, eps, steps, lam, optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    alpha = 2.5 * eps / steps
    seed = tf.Variable([0, 0], dtype=tf.int32)

    @tf.function
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    eps, lam = 0.2, 1.0
    (x, y), _ = ka.datasets.load_digits()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).cache().prefetch(2)

    keras.utils.set_random_seed(0)
    base_a = ka.models.presets.small_cnn(width=args.width)
    model = ka.AdversarialModel(base_a, attack=ka.attacks.PGD(epsilon=eps, steps=args.steps), adv_weight=lam)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    keras.utils.set_random_seed(0)
    base_b = ka.models.presets.small_cnn(width=args.width)
    loop_epoch = plain_loop(base_b, dataset, eps, args.steps, lam, keras.optimizers.Adam(1e-3))

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing
    loop_epoch()
    t_fit, t_loop = [], []
    for _ in range(args.rounds):
        timer = EpochTimer()
        model.fit(dataset, epochs=args.epochs, verbose=0, callbacks=[timer])
        t_fit += timer.times
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            loop_epoch()
            t_loop.append(time.perf_counter() - t0)
    med_fit, med_loop = statistics.median(t_fit), statistics.median(t_loop)
    ratio = med_fit / med_loop
    ratio_min = min(t_fit) / min(t_loop)
    lines = [
        f"# AdversarialModel.fit vs plain tf.function loop (PGD-{args.steps}, small_cnn width {args.width}, "
        f"digits {len(x)} train, batch {args.batch_size})",
        "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, Keras {keras.__version__}",
        "",
        "| side | median epoch (s) | min epoch (s) | epochs timed |",
        "|---|---|---|---|",
        f"| AdversarialModel.fit | {med_fit:.3f} | {min(t_fit):.3f} | {len(t_fit)} |",
        f"| plain tf.function loop | {med_loop:.3f} | {min(t_loop):.3f} | {len(t_loop)} |",
        "",
        f"**ratio fit / plain loop = {ratio:.3f}** (medians; target <= 1.15); ratio of minima {ratio_min:.3f}",
    ]
    text = "\n".join(lines)
    print(text)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fit_overhead.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
