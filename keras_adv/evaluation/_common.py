"""Shared helpers of the evaluation package: inputs, batched prediction and attack runs."""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.attacks import _batches
from keras_adv.attacks._tracing import call_function
from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_model, check_number

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
    if model is None or not callable(model):
        raise TypeError(f"`model` must be a Keras model or a path to a `.keras` file, got {type(model).__name__}.")
    check_model(model)
    return model


def to_numpy(data, y=None, *, max_examples: Optional[int] = None, argument: str = "data",
             model=None) -> Tuple[np.ndarray, np.ndarray]:
    """`(x, y)` numpy arrays from arrays, an `(x, y)` tuple or a `tf.data.Dataset` of `(x, y)` batches.

    Errors name `argument` (the caller's name for `data`: `x` for the functions taking `x, y`). With
    `model`, integer ids given for a model that embeds them say that input-space attacks do not apply.
    """
    from keras_adv.attacks import _batches

    _batches.check_data(data, max_examples=max_examples)
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
            raise ValueError(f"`{argument}` is empty.")
        x, y = np.concatenate(xs), np.concatenate(ys)
    else:
        if isinstance(data, (tuple, list)) and len(data) == 2 and y is None:
            data, y = data
        if y is None:
            raise ValueError(f"`y` is required when `{argument}` is an array of inputs (or pass `{argument}=(x, y)`).")
        x, y = np.asarray(data), np.asarray(y)
    if not np.issubdtype(x.dtype, np.floating):
        from keras_adv.attacks.inner_layer import embeddings_of

        hint = ""
        if model is not None and np.issubdtype(x.dtype, np.integer) and embeddings_of(model):
            hint = (" They look like token ids (the model embeds them): this runs input-space attacks, which "
                    "do not apply to ids; measure robustness to token substitutions with "
                    "keras_adv.attacks.HotFlip (evaluate_robustness(..., attacks={'hotflip': HotFlip(...)})).")
        raise TypeError(f"`{argument}` must hold floating-point inputs, got dtype {x.dtype}.{hint}")
    if len(x) != len(y):
        raise ValueError(f"`{argument}` and `y` must have the same length, got {len(x)} and {len(y)}.")
    if len(x) == 0:
        raise ValueError(f"`{argument}` is empty.")
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    return x.astype(np.float32, copy=False), y


def labels_of(y: np.ndarray) -> np.ndarray:
    """Integer classes from integer or one-hot labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(1).astype(np.int64)
    return y.reshape(-1).astype(np.int64)


def predicted_classes(outputs: np.ndarray, from_logits: Optional[bool] = None) -> np.ndarray:
    """Arg-max classes; a single-unit output is thresholded (0.5 for probabilities, 0 for logits).

    `from_logits` (`losses.infer_from_logits(model)`) says which a single unit
    holds; None leaves the batch to decide (probabilities if all lie in [0, 1]).
    """
    outputs = np.asarray(outputs)
    if outputs.shape[-1] == 1:
        o = outputs[..., 0]
        if from_logits is None:
            from_logits = not ((o >= 0) & (o <= 1)).all()
        return (o > (0.0 if from_logits else 0.5)).astype(np.int64)
    return outputs.argmax(-1).astype(np.int64)


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs (inference mode) over `x` in batches, as float32 numpy."""
    fn = call_function(model)
    out = [fn(tf.convert_to_tensor(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


def predict_classes(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's classes over `x`: `predicted_classes` of `predict`, single units read from its last layer."""
    return predicted_classes(predict(model, x, batch_size), losses_lib.infer_from_logits(model))


def to_probs(outputs: np.ndarray, from_logits: Optional[bool] = None) -> np.ndarray:
    """Softmax probabilities from logits or probabilities (auto-detected, like the losses)."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.shape[-1] == 1:  # one unit: a probability, or a logit
        in_unit = ((outputs >= 0) & (outputs <= 1)).all() if from_logits is None else not from_logits
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

    Batch `k` uses the stateless seed `batch_seed(attack.seed, k)` (or
    `seed` when the attack has none), as `attack.generate` does, so the
    results equal a direct `attack.generate(...)` call with the same ε.
    `epsilon="default"` keeps the attack's own ε; a number overrides it per
    call (`Attack.__call__`'s `epsilon=`).
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"attacks must be keras_adv.attacks.Attack instances, got {type(attack).__name__}.")
    batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
    base = _batches.base_seed(attack.seed if attack.seed is not None else seed)
    eps = None if isinstance(epsilon, str) and epsilon == "default" else float(epsilon)
    step = attack.batch_function(model)
    out = []
    for b in _batches.iterate(x, y, batch_size=batch_size, check_float=False):
        out.append(np.asarray(step(b.x, b.y, eps, _batches.batch_seed(base, b.index))))
        if progbar is not None:
            progbar.add(1)
    return np.concatenate(out)


def n_batches(n: int, batch_size: int) -> int:
    return int(math.ceil(n / batch_size))
