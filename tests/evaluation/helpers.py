"""Shared test helpers for the evaluation tests."""

import keras
import numpy as np
import tensorflow as tf

from keras_adv.attacks.attack import Attack


class RandomSearch(Attack):
    """A tiny gradient-free attack for tests: the best of `queries` random ε-ball vertices."""

    gradient_free = True

    def __init__(self, epsilon, *, queries=20, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)
        self.queries = int(queries)

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        seeds = tf.random.experimental.stateless_split(seed, self.queries)
        best = x
        best_obj = self.objective(loss_fn, y, model(x, training=False))
        best_ok = self.is_successful(model(x, training=False), y)

        def body(i, best, best_obj, best_ok):
            u = tf.random.stateless_uniform(tf.shape(x), seeds[i], dtype=x.dtype)
            cand = self.clip(x + epsilon * tf.sign(u - 0.5))
            out = model(cand, training=False)
            obj, ok = self.objective(loss_fn, y, out), self.is_successful(out, y)
            better = (ok & ~best_ok) | ((ok == best_ok) & (obj > best_obj))
            mask = tf.reshape(better, [-1] + [1] * (len(x.shape) - 1))
            return i + 1, tf.where(mask, cand, best), tf.where(better, obj, best_obj), best_ok | ok

        _, best, _, _ = tf.while_loop(lambda i, *_: i < self.queries, body,
                                      (tf.constant(0), best, best_obj, best_ok))
        return best


def train_small_cnn(digits, epochs=10, width=16, seed=0):
    from keras_adv.models.presets import small_cnn

    (xt, yt), _ = digits
    keras.utils.set_random_seed(seed)
    m = small_cnn(width=width)
    m.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    m.fit(xt, yt, epochs=epochs, batch_size=64, verbose=0)
    return m


def report_arrays(report):
    """Every per-example array of a report, by name (for exact comparisons)."""
    out = {"labels": report.labels, "clean_correct": report.clean_correct, "p_true_clean": report.p_true_clean,
           "keys": report.keys, "clean_examples": report.clean_examples}
    for n, r in report.results.items():
        for i, e in enumerate(r.epsilons):
            for f in ("correct", "p_true", "perturbation", "examples", "example_predictions"):
                out[f"{n}/{e}/{f}"] = getattr(r, f)[i]
    if report.minimal is not None:
        out["minimal/sizes"] = report.minimal["sizes"]
        out["minimal/broken"] = report.minimal["broken"]
    return out
