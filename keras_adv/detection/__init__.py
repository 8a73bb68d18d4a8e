"""Detect and reject adversarial inputs (Metzen et al. 2017), evaluated with adaptive attacks."""

from keras_adv.detection.detector import RejectingModel, adaptive_loss, build_detector, train_detector
from keras_adv.detection.evaluate import DetectionReport, evaluate_detection, roc_auc

__all__ = [
    "DetectionReport",
    "RejectingModel",
    "adaptive_loss",
    "build_detector",
    "evaluate_detection",
    "roc_auc",
    "train_detector",
]
