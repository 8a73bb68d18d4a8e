"""Datasets scaled to the attack bounds [0, 1]."""

from keras_adv.datasets.digits import load_digits

__all__ = ["load_digits"]
