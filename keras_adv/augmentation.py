"""Offline adversarial data augmentation (generate once, train on the augmented set)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_adv import attacks as attacks_lib
from keras_adv.utils.validation import check_number

__all__ = ["adversarial_dataset"]


def _to_numpy(data, y):
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("A `tf.data.Dataset` passed as `data` must yield (x, y) batches.")
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
        if not xs:
            raise ValueError("`data` is empty.")
        return np.concatenate(xs), np.concatenate(ys)
    if y is None:
        raise ValueError("`y` is required when `data` is an array of inputs.")
    x, y = np.asarray(data), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"`data` and `y` must have the same length, got {len(x)} and {len(y)}.")
    return x, y


def adversarial_dataset(
    model,
    attack: attacks_lib.Attack,
    data,
    y=None,
    *,
    fraction: float = 1.0,
    include_clean: bool = True,
    shuffle: bool = True,
    batch_size: int = 256,
    seed: Optional[int] = None,
    return_numpy: bool = False,
    verbose=0,
):
    """Offline adversarial augmentation: attack the training data once, add it to the originals.

    The classic recipe (Goodfellow et al. 2015; Kurakin et al. 2017): craft
    FGSM/PGD examples of (a fraction of) the training set against a trained
    `model`, combine them with the clean examples and train a model on the
    result with an ordinary `fit`.

    Example:

    ```python
    ds = keras_adv.augmentation.adversarial_dataset(
        source_model, keras_adv.attacks.PGD(epsilon=0.1, steps=10), x_train, y_train, seed=0)
    model.fit(ds.batch(64).prefetch(2), epochs=10)
    ```

    Args:
        model: the model to attack.
        attack: a `keras_adv.attacks.Attack`.
        data: numpy inputs (with `y`), or a `tf.data.Dataset` of `(x, y)` batches.
        y: labels for numpy `data`.
        fraction: the fraction of examples (chosen at random) to attack, in (0, 1].
        include_clean: keep the original examples too (else adversarial only).
        shuffle: shuffle the combined examples (with `seed`); the returned
            dataset is shuffled once, in a fixed order.
        batch_size: batch size of the attack.
        seed: seed of the subset choice and the shuffle.
        return_numpy: return `(x, y)` numpy arrays instead of a dataset.
        verbose: progress bar of the attack.

    Returns:
        An *unbatched* `tf.data.Dataset` of `(x, y)` examples (batch it
        yourself), or `(x, y)` arrays with `return_numpy=True`. Adversarial
        inputs are float32.
    """
    attack = attacks_lib.get(attack)
    if attack is None:
        raise ValueError("`attack` is required, e.g. keras_adv.attacks.FGSM(epsilon=0.1).")
    fraction = check_number("fraction", fraction, minimum=0.0, strict=True)
    if fraction > 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}.")
    x, y = _to_numpy(data, y)
    rng = np.random.default_rng(seed)
    n_adv = max(1, int(round(fraction * len(x))))
    idx = np.sort(rng.permutation(len(x))[:n_adv]) if n_adv < len(x) else np.arange(len(x))
    x_adv = attack.generate(model, x[idx].astype("float32", copy=False), y[idx], batch_size=batch_size,
                            verbose=verbose)
    if include_clean:
        x_all = np.concatenate([x.astype("float32", copy=False), x_adv.astype("float32", copy=False)])
        y_all = np.concatenate([y, y[idx]])
    else:
        x_all, y_all = x_adv.astype("float32", copy=False), y[idx]
    if shuffle:
        order = rng.permutation(len(x_all))
        x_all, y_all = x_all[order], y_all[order]
    if return_numpy:
        return x_all, y_all
    return tf.data.Dataset.from_tensor_slices((x_all, y_all))
