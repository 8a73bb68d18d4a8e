"""Batch streams and per-batch seeds shared by `Attack.generate` and the evaluator.

A stream is a sequence of `Batch(index, x, y)` with the *global* batch index,
so that a shard `(i, n)` of the stream (the batches whose index is `i` modulo
`n`) sees exactly the batches, and the seeds, it would see in the whole
stream. Nothing proportional to the data is held: numpy inputs are sliced,
`tf.data` inputs are iterated.

Seeds are stateless: batch `k` of an attack with seed `s` is attacked with
`batch_seed(s, k)`, whatever the shard, the process or the number of batches
before it. That is what lets sharded evaluations merge into the unsharded one
exactly.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

__all__ = ["Batch", "batch_seed", "base_seed", "check_shard", "check_data", "iterate", "num_batches", "refuse_dict"]


class Batch(NamedTuple):
    index: int  # global batch index in the unsharded stream
    x: np.ndarray
    y: np.ndarray


def base_seed(seed: Optional[int]) -> int:
    """The integer seed of a stream: `seed`, or a fresh random one when None."""
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    return int(seed)


def batch_seed(seed: int, index) -> tf.Tensor:
    """The stateless seed (int32, shape (2,)) of batch `index` of a stream seeded with `seed`.

    `tf.random.experimental.stateless_fold_in(pair, index)` cast to int32: by
    its definition `[draw(pair), index]`, whose first word depends on the
    seed only, so it is computed once per seed and the per-batch cost is one
    small constant (no TensorFlow ops in `generate`'s batch loop).
    """
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        word = np.array([_seed_word(int(seed)), int(index)], np.int64).astype(np.int32)  # wraps like tf.cast
        return tf.constant(word)
    return tf.cast(tf.random.experimental.stateless_fold_in(_seed_pair(int(seed)), tf.cast(index, tf.int64)),
                   tf.int32)


def _seed_pair(seed: int) -> tf.Tensor:
    return tf.constant([(seed // 2**31) % 2**31, seed % 2**31], tf.int64)


@functools.lru_cache(maxsize=64)
def _seed_word(seed: int) -> int:
    """The first word of every batch seed of `seed` (see `batch_seed`)."""
    return int(tf.random.experimental.stateless_fold_in(_seed_pair(seed), tf.constant(0, tf.int64))[0])


def check_shard(shard) -> Optional[Tuple[int, int]]:
    """Validates `shard=(index, count)`; returns it as ints (or None)."""
    if shard is None:
        return None
    try:
        i, n = shard
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (i, n))
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= int(i) < int(n):
        raise ValueError(f"`shard` must be a pair (index, count) of integers with 0 <= index < count, got {shard!r}.")
    return int(i), int(n)


def num_batches(data, y=None, *, batch_size: int, max_examples: Optional[int] = None,
                shard=None) -> Optional[int]:
    """How many batches `iterate` will yield (None when a `tf.data` cardinality is unknown)."""
    shard = check_shard(shard)
    if isinstance(data, tf.data.Dataset):
        if max_examples is not None:
            return None
        card = int(data.cardinality().numpy())
        if card < 0:
            return None
        total = card
    else:
        x = data[0] if (isinstance(data, (tuple, list)) and len(data) == 2 and y is None) else data
        n = len(x) if max_examples is None else min(len(x), max_examples)
        total = int(math.ceil(n / batch_size))
    if shard is None:
        return total
    i, n = shard
    return len(range(i, total, n))


def refuse_dict(x, argument: str = "data") -> None:
    """Raises a `TypeError` naming `argument` when the inputs `x` are a dict of named inputs.

    `generate`, `iterate` and `evaluate_robustness` stream `(records, features)`
    arrays; a dict of named inputs (a functional model with several `keras.Input`s)
    is attacked by calling the attack on each batch, as `AdversarialModel.fit` does.
    """
    if isinstance(x, dict):
        raise TypeError(
            f"`{argument}` holds a dict of named inputs ({', '.join(map(repr, list(x)[:6]))}); attack.generate, "
            "attack.iterate and evaluate_robustness take an array of inputs (or a tf.data.Dataset of (x, y) "
            "array batches). For a model with named inputs, call the attack on each batch: "
            "`attack(model, {name: tensor, ...}, y)` returns the dict of adversarial inputs (as "
            "AdversarialModel.fit does); or give the model one array input."
        )


def check_data(data, *, max_examples: Optional[int] = None, argument: str = "data") -> None:
    """Refuses, naming `argument`, inputs the batch streams cannot read.

    A Python generator or iterator, a `keras.utils.PyDataset` or a dataset
    already distributed by a strategy get a `TypeError` saying what is
    accepted and how to convert; an infinite `tf.data.Dataset` (`repeat()`)
    without `max_examples` a `ValueError` (it would run forever).
    """
    import collections.abc

    import keras

    kind = None
    if isinstance(data, keras.utils.PyDataset):
        kind, fix = "a keras.utils.PyDataset", "wrap it as a tf.data.Dataset of (x, y) batches"
    elif isinstance(data, tf.distribute.DistributedDataset):
        kind, fix = ("a distributed dataset", "give the plain tf.data.Dataset and the strategy as `strategy=`; "
                     "it distributes the batches itself")
    elif isinstance(data, collections.abc.Iterator):
        kind, fix = ("a Python generator or iterator",
                     "wrap it with tf.data.Dataset.from_generator(..., output_signature=...), yielding (x, y) batches")
    if kind is not None:
        raise TypeError(
            f"`{argument}` is {kind}: it must be an array of inputs (with `y`), an (x, y) tuple of arrays or a "
            f"tf.data.Dataset of (x, y) batches; {fix}."
        )
    if (isinstance(data, tf.data.Dataset) and max_examples is None
            and int(data.cardinality().numpy()) == int(tf.data.INFINITE_CARDINALITY)):
        raise ValueError(
            f"`{argument}` is an infinite tf.data.Dataset (it repeats forever): pass `max_examples=` (evaluation), "
            "or `dataset.take(n)` / drop the `repeat()`."
        )


def _split(data, y):
    if isinstance(data, (tuple, list)) and len(data) == 2 and y is None:
        return data[0], data[1]
    return data, y


def iterate(data, y=None, *, batch_size: int, max_examples: Optional[int] = None,
            shard=None, check_float: bool = True) -> Iterator[Batch]:
    """Yields this shard's `Batch`es of `data` (numpy `x` with `y`, an `(x, y)` tuple, or a `tf.data.Dataset`).

    Raises a `ValueError` naming the argument for mismatched lengths,
    unbatched datasets, or a stream (or shard) without any example.
    """
    shard = check_shard(shard)
    i0, n = shard if shard is not None else (0, 1)
    seen = 0
    if isinstance(data, tf.data.Dataset):
        if y is not None:
            raise ValueError("`y` must be None when `data` is a tf.data.Dataset (it yields (x, y)).")
        dataset = data
        if max_examples is None and n > 1:
            dataset = dataset.shard(n, i0)
            indices = iter(range(i0, 2**62, n))
        else:
            indices = None
        count, rank, warned = 0, None, False
        for k, batch in enumerate(dataset):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("A tf.data.Dataset passed as `data` must yield (x, y) batches.")
            if len(batch) > 2 and not warned:
                import warnings

                warnings.warn(
                    "`data` yields (x, y, sample_weight) batches: the sample weights are ignored, every example "
                    "counts (as in Keras' unweighted metrics). Drop examples that must not count (e.g. "
                    "unlabeled ones with weight 0) with `dataset.unbatch().filter(...)`, or map to (x, y).",
                    stacklevel=3)
                warned = True
            refuse_dict(batch[0])
            xb = batch[0].numpy() if tf.is_tensor(batch[0]) else np.asarray(batch[0])
            yb = batch[1].numpy() if tf.is_tensor(batch[1]) else np.asarray(batch[1])
            if xb.ndim < 2 or yb.ndim == 0 or (rank is not None and xb.ndim != rank):
                raise ValueError("`data` must be batched: call `dataset.batch(n)` first (it yields one "
                                 "example at a time).")
            rank = xb.ndim
            if len(xb) != len(yb):
                raise ValueError(f"`data` yields x and y batches of different lengths ({len(xb)} and {len(yb)}).")
            if max_examples is not None:
                xb, yb = xb[:max_examples - count], yb[:max_examples - count]
                count += len(xb)
            index = next(indices) if indices is not None else k
            if indices is None and index % n != i0:
                if max_examples is not None and count >= max_examples:
                    break
                continue
            if check_float:
                _check_float(xb)
            if len(xb):
                seen += 1
                yield Batch(index, xb, yb)
            if max_examples is not None and count >= max_examples:
                break
    else:
        x, yy = _split(data, y)
        refuse_dict(x)
        if yy is None:
            raise ValueError("`y` is required when `data` is an array of inputs (or pass `data=(x, y)`).")
        x, yy = np.asarray(x), np.asarray(yy)
        if len(x) != len(yy):
            raise ValueError(f"`data` and `y` must have the same length, got {len(x)} and {len(yy)}.")
        if check_float:
            _check_float(x)
        total = len(x) if max_examples is None else min(len(x), max_examples)
        for k in range(i0, int(math.ceil(total / batch_size)), n):
            lo, hi = k * batch_size, min((k + 1) * batch_size, total)
            seen += 1
            yield Batch(k, x[lo:hi], yy[lo:hi])
    if not seen:
        raise ValueError("`data` is empty." if shard is None else
                         f"`data` has no batch in shard {shard} (fewer batches than shards).")


def _check_float(x):
    if not np.issubdtype(np.asarray(x).dtype, np.floating):
        raise TypeError(f"`data` must hold floating-point inputs, got dtype {np.asarray(x).dtype}.")
