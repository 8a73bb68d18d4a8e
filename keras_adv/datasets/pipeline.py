"""In-memory arrays as a `tf.data` pipeline that ends its epochs without waiting.

`model.fit(x, y)` on numpy arrays and a `tf.data` pipeline left with its default options both run
tf.data's autotuning thread. In TF 2.21 an iterator's end waits for that thread's next wake-up, so
an epoch can end seconds after its last batch: on the digits benchmark a `fit(epochs=1)` of 6-7 s of
work ended at 10.23 s (numbers and set-up: docs/training.md, "The end of each epoch"). An in-memory
pipeline has nothing to tune, so `batches` turns autotuning off and prefetches a fixed two batches.
"""

from __future__ import annotations

import numbers

import numpy as np

PREFETCH = 2


def batches(x, y=None, batch_size: int = 64, *, shuffle: bool = True, seed: int | None = None):
    """`(x, y)` arrays as a batched `tf.data.Dataset` for `fit`, with tf.data autotuning off.

    Args:
        x: array (or a tuple/dict of arrays) of inputs, first axis the examples.
        y: labels with the same first axis, or None for inputs only.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: reshuffle the examples at every epoch (every new iteration), as `fit` does for arrays.
        seed: the shuffle's seed; with a seed the sequence of epoch orders is the same on every run.

    Returns:
        A `tf.data.Dataset` of `(x_batch, y_batch)` (or `x_batch`) that iterates once per epoch.
    """
    import tensorflow as tf

    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}.")

    def examples(arrays):
        return {int(np.shape(a)[0]) for a in tf.nest.flatten(arrays)}

    lengths = examples(x)
    n_y = None if y is None else examples(y)
    if len(lengths) != 1 or (n_y is not None and n_y != lengths):
        raise ValueError(f"x and y must have the same number of examples along their first axis, got x: "
                         f"{sorted(lengths)}, y: {sorted(n_y) if n_y is not None else None}.")
    n = lengths.pop()
    if n == 0:
        raise ValueError("x holds no examples.")
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(int(batch_size)).prefetch(PREFETCH).with_options(options)
