"""Shared helpers of the evaluation package: inputs, batched prediction and attack runs."""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_adv.attacks.attack import Attack, _check_number, draw_seed

__all__ = ["load_model", "to_numpy", "predict", "run_attack"]


def load_model(model):
    """A Keras model, or the model saved at a `.keras` path."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not path.endswith(".keras"):
            raise ValueError(f"`model` given as a path must be a `.keras` file, got {path!r}.")
        if not os.path.exists(path):
            raise FileNotFoundError(f"`model`: no such file {path!r}.")
        return keras.models.load_model(path)
    if not callable(model):
        raise TypeError(f"`model` must be a Keras model or a path to a `.keras` file, got {type(model).__name__}.")
    return model


def to_numpy(data, y=None, *, max_examples: Optional[int] = None,
             integer_inputs: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """`(x, y)` numpy arrays from arrays, an `(x, y)` tuple or a `tf.data.Dataset` of `(x, y)` batches.

    With `integer_inputs` (token-id attacks such as HotFlip) `x` must hold
    integers and keeps its dtype; otherwise it must be floating point.
    """
    if isinstance(data, tf.data.Dataset):
        if y is not None:
            raise ValueError("`y` must be None when `data` is a tf.data.Dataset (it yields (x, y)).")
        xs, ys, n = [], [], 0
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("A tf.data.Dataset passed as `data` must yield (x, y) batches.")
            xb, yb = np.asarray(batch[0]), np.asarray(batch[1])
            if xb.ndim == 0 or (xs and xb.ndim != xs[0].ndim):
                raise ValueError("`data` must be batched: call `dataset.batch(n)` first.")
            xs.append(xb)
            ys.append(yb)
            n += len(xb)
            if max_examples is not None and n >= max_examples:
                break
        if not xs:
            raise ValueError("`data` is empty.")
        x, y = np.concatenate(xs), np.concatenate(ys)
    else:
        if isinstance(data, (tuple, list)) and len(data) == 2 and y is None:
            data, y = data
        if y is None:
            raise ValueError("`y` is required when `data` is an array of inputs (or pass `data=(x, y)`).")
        x, y = np.asarray(data), np.asarray(y)
    if integer_inputs:
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"`data` must hold integer token ids for token attacks, got dtype {x.dtype}.")
    elif not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"`data` must hold floating-point inputs, got dtype {x.dtype}.")
    if len(x) != len(y):
        raise ValueError(f"`data` and `y` must have the same length, got {len(x)} and {len(y)}.")
    if len(x) == 0:
        raise ValueError("`data` is empty.")
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    return (x if integer_inputs else x.astype(np.float32, copy=False)), y


def labels_of(y: np.ndarray) -> np.ndarray:
    """Integer classes from integer or one-hot labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(1).astype(np.int64)
    return y.reshape(-1).astype(np.int64)


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Arg-max classes; a single-unit output is thresholded (0.5 for probabilities, 0 for logits)."""
    outputs = np.asarray(outputs)
    if outputs.shape[-1] == 1:
        o = outputs[..., 0]
        thr = 0.5 if ((o >= 0) & (o <= 1)).all() else 0.0
        return (o > thr).astype(np.int64)
    return outputs.argmax(-1).astype(np.int64)


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs (inference mode) over `x` in batches, as float32 numpy."""
    fn = _call_fn(model)
    out = [fn(tf.convert_to_tensor(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


_CALL_FNS = {}


def _call_fn(model):
    key = id(model)
    entry = _CALL_FNS.get(key)
    if entry is None or entry[0] is not model:
        fn = tf.function(lambda xb: model(xb, training=False), reduce_retracing=True)
        entry = (model, fn)
        if len(_CALL_FNS) > 64:
            _CALL_FNS.clear()
        _CALL_FNS[key] = entry
    return entry[1]


def to_probs(outputs: np.ndarray) -> np.ndarray:
    """Softmax probabilities from logits or probabilities (auto-detected, like the losses)."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.shape[-1] == 1:  # one unit: a probability, or a logit
        in_unit = ((outputs >= 0) & (outputs <= 1)).all()
        return outputs if in_unit else 1.0 / (1.0 + np.exp(-outputs))
    is_prob = (outputs >= 0).all() and np.allclose(outputs.sum(-1), 1.0, atol=1e-3)
    if is_prob:
        return outputs
    z = outputs - outputs.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def run_attack(attack: Attack, model, x: np.ndarray, y: np.ndarray, *, epsilon="default",
               batch_size: int = 256, seed: Optional[int] = None, progbar=None) -> np.ndarray:
    """Runs `attack` over numpy `x` in batches, exactly like `Attack.generate`.

    The per-batch seeds come from `keras.random.SeedGenerator(attack.seed)`
    (or `seed` when the attack has none), drawn in batch order, the same
    stream `attack.generate` uses, so the results equal a direct
    `attack.generate(...)` call with the same ε. `epsilon="default"` keeps the
    attack's own ε; a number overrides it per call (`Attack.__call__`'s
    `epsilon=`).
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"attacks must be keras_adv.attacks.Attack instances, got {type(attack).__name__}.")
    batch_size = _check_number("batch_size", batch_size, minimum=1, integer=True)
    seed_gen = keras.random.SeedGenerator(attack.seed if attack.seed is not None else seed)
    use_default = isinstance(epsilon, str) and epsilon == "default"
    eps = None if use_default else tf.constant(float(epsilon), tf.float32)

    step = _attack_fn(attack, model, use_default)
    out = []
    for i in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(x[i:i + batch_size])
        yb = tf.convert_to_tensor(y[i:i + batch_size])
        s = draw_seed(seed_gen)
        out.append((step(xb, yb, s) if use_default else step(xb, yb, eps, s)).numpy())
        if progbar is not None:
            progbar.add(1)
    return np.concatenate(out)


_ATTACK_FNS = {}


def _attack_fn(attack, model, use_default):
    """One traced function per (attack, model), reused across ε values and calls."""
    key = (id(attack), id(model), use_default)
    entry = _ATTACK_FNS.get(key)
    if entry is None or entry[0] is not attack or entry[1] is not model:
        if use_default:
            fn = tf.function(lambda xb, yb, s: attack(model, xb, yb, seed=s), reduce_retracing=True)
        else:
            fn = tf.function(lambda xb, yb, e, s: attack(model, xb, yb, epsilon=e, seed=s),
                             reduce_retracing=True)
        entry = (attack, model, fn)
        if len(_ATTACK_FNS) > 64:
            _ATTACK_FNS.clear()
        _ATTACK_FNS[key] = entry
    return entry[2]


def n_batches(n: int, batch_size: int) -> int:
    return int(math.ceil(n / batch_size))
