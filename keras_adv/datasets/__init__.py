"""Datasets: images scaled to [0, 1] and tables with their feature spaces: `keras_adv.datasets.load(name, split)`."""

from keras_adv.datasets import tabular
from keras_adv.datasets.catalog import DatasetInfo, available, feature_space, info, load
from keras_adv.datasets.digits import load_digits

__all__ = ["DatasetInfo", "available", "feature_space", "info", "load", "load_digits", "tabular"]
