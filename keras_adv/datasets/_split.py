"""The stratified train/test split shared by the offline datasets (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(x, y, test_fraction: float = 0.25, seed: int = 0):
    """`((x_train, y_train), (x_test, y_test))`: per class, `test_fraction` of the examples to test, fixed by `seed`."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}.")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test_idx.extend(idx[:n_test])
        train_idx.extend(idx[n_test:])
    train_idx = rng.permutation(np.array(train_idx))
    test_idx = np.sort(np.array(test_idx))
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])
