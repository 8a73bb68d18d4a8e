"""Datasets scaled to the attack bounds [0, 1]: `keras_adv.datasets.load(name, split)`."""

from keras_adv.datasets.catalog import DatasetInfo, DatasetUnavailableError, available, info, load
from keras_adv.datasets.digits import load_digits

__all__ = ["DatasetInfo", "DatasetUnavailableError", "available", "info", "load", "load_digits"]
