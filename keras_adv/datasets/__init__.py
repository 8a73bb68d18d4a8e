"""Datasets scaled to the attack bounds [0, 1]: `keras_adv.datasets.load(name, split)`; text: `load_text`."""

from keras_adv.datasets.catalog import DatasetInfo, DatasetUnavailableError, available, info, load
from keras_adv.datasets.digits import load_digits
from keras_adv.datasets.text import TEXT_DATASETS, SyntheticText, load_text, synthetic_text, with_unlabeled

__all__ = ["DatasetInfo", "DatasetUnavailableError", "available", "info", "load", "load_digits",
           "TEXT_DATASETS", "SyntheticText", "load_text", "synthetic_text", "with_unlabeled"]
