"""Robustness metrics (`keras.metrics.Metric` subclasses)."""

from keras_adv.metrics.robustness import RobustAccuracy, RobustnessMargin

__all__ = ["RobustAccuracy", "RobustnessMargin"]
