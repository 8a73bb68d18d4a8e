"""Honest robustness evaluation: reports, gradient-masking diagnostics, transfer attacks."""

from keras_adv.evaluation.diagnostics import Diagnosis, MaskingWarning, diagnose_gradient_masking
from keras_adv.evaluation.evaluate import evaluate_robustness
from keras_adv.evaluation.report import RobustnessReport

__all__ = [
    "Diagnosis",
    "MaskingWarning",
    "RobustnessReport",
    "diagnose_gradient_masking",
    "evaluate_robustness",
]
