"""Datasets: images scaled to [0, 1], tables with their feature spaces, text: `keras_adv.datasets.load(name, split)`, `load_text`."""

from keras_adv.datasets.catalog import DatasetInfo, DatasetUnavailableError, available, feature_space, info, load
from keras_adv.datasets.digits import load_digits
from keras_adv.datasets.pipeline import batches
from keras_adv.datasets.text import TEXT_DATASETS, SyntheticText, load_text, synthetic_text, with_unlabeled

__all__ = ["batches", "DatasetInfo", "DatasetUnavailableError", "available", "feature_space", "info", "load", "load_digits",
           "tabular", "TEXT_DATASETS", "SyntheticText", "load_text", "synthetic_text", "with_unlabeled"]


def __getattr__(name):
    # `keras_adv.datasets.tabular` imports TensorFlow: loaded on first use, not with the package.
    if name == "tabular":
        import importlib

        return importlib.import_module("keras_adv.datasets.tabular")
    raise AttributeError(f"module 'keras_adv.datasets' has no attribute {name!r}")
