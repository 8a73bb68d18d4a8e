"""Honest robustness evaluation: reports, gradient-masking diagnostics, transfer attacks."""

from keras_adv.evaluation.diagnostics import Diagnosis, MaskingWarning, diagnose_gradient_masking
from keras_adv.evaluation.evaluate import evaluate_robustness
from keras_adv.evaluation.report import RobustnessReport
from keras_adv.evaluation.transfer import TransferMatrix, transfer_attack, transfer_matrix

__all__ = [
    "Diagnosis",
    "MaskingWarning",
    "RobustnessReport",
    "TransferMatrix",
    "diagnose_gradient_masking",
    "evaluate_robustness",
    "transfer_attack",
    "transfer_matrix",
]
