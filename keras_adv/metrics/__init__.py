"""Robustness metrics (`keras.metrics.Metric` subclasses)."""

from keras_adv.metrics.attack import AttackSuccessRate, MeanPerturbationNorm
from keras_adv.metrics.robustness import RobustAccuracy, RobustnessMargin

__all__ = ["AttackSuccessRate", "MeanPerturbationNorm", "RobustAccuracy", "RobustnessMargin"]
