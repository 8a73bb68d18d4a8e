"""The offline default dataset: scikit-learn's bundled 8×8 handwritten digits."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from keras_adv.datasets._split import stratified_split

__all__ = ["load_digits"]


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Loads the 1,797 real 8×8 digits bundled with scikit-learn (no download).

    Pixels are scaled to [0, 1] as float32 images of shape (8, 8, 1); labels
    are int64 classes 0–9. The split is stratified and fixed by `seed`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}.")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "The offline digits dataset needs scikit-learn: pip install 'keras-adv[digits]'."
        ) from e
    data = _sk_load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int64")
    return stratified_split(x, y, test_fraction, seed)
