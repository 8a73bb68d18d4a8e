"""Honest evaluation of a detect-and-reject defence: non-adaptive *and* adaptive attacks."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number
from keras_adv.detection.detector import RejectingModel, adaptive_loss
from keras_adv.evaluation import _common

__all__ = ["roc_auc", "DetectionReport", "evaluate_detection"]


def roc_auc(negative_scores, positive_scores) -> float:
    """Area under the ROC curve: P(score(positive) > score(negative)), ties counting one half."""
    neg = np.sort(np.asarray(negative_scores, np.float64).ravel())
    pos = np.asarray(positive_scores, np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    at_or_below = np.searchsorted(neg, pos, side="right")
    return float((below + 0.5 * (at_or_below - below)).sum() / (neg.size * pos.size))


@dataclass
class DetectionReport:
    """Numbers of `evaluate_detection`; `results[setting]` for `"non_adaptive"` and `"adaptive"`.

    Per setting: `roc_auc` (detector scores, clean vs the adversarial examples
    that fool the classifier), `detection_rate` (those flagged at the
    threshold), `classifier_success_rate` (fraction of clean-correct
    examples the attack makes the classifier misclassify, ignoring the
    detector) and `system_success_rate` (misclassified *and* not rejected:
    what the attacker wants).
    """

    clean_accuracy: float
    false_positive_rate: float
    threshold: float
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def to_dict(self):
        return {"clean_accuracy": self.clean_accuracy, "false_positive_rate": self.false_positive_rate,
                "threshold": self.threshold, "results": self.results}

    def __str__(self):
        w = max([len(k) for k in self.results] + [6]) + 2
        lines = [f"Detection: clean accuracy {self.clean_accuracy:.4f}, clean inputs rejected "
                 f"{self.false_positive_rate:.2%} (threshold {self.threshold:.3g})",
                 f"{'attack':<{w}}{'ROC-AUC':<10}{'detected':<10}{'fools clf':<11}{'fools system':<12}"]
        for k, r in self.results.items():
            auc = "n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.4f}"
            det = "n/a" if r["detection_rate"] is None else f"{r['detection_rate']:.2%}"
            lines.append(f"{k:<{w}}{auc:<10}{det:<10}{r['classifier_success_rate']:<11.2%}"
                         f"{r['system_success_rate']:<12.2%}")
        return "\n".join(lines)


def evaluate_detection(guarded: RejectingModel, x, y=None, *, attack: Attack,
                       adaptive_attack: Optional[Attack] = "auto", batch_size: int = 256,
                       seed: int = 0) -> DetectionReport:
    """Evaluates a detect-and-reject defence against a non-adaptive and an adaptive attacker.

    * non-adaptive: `attack` crafted against the classifier alone (the
      attacker ignores the detector);
    * adaptive: an attack on the whole `RejectingModel` maximising
      `keras_adv.detection.adaptive_loss` (misclassified and not rejected).
      `"auto"` uses a copy of `attack` with that loss; pass a stronger attack
      (more steps, restarts) to be thorough. `None` skips it, and the report
      says so.

    Returns:
        A `DetectionReport`.
    """
    if not isinstance(guarded, RejectingModel):
        raise TypeError(f"`guarded` must be a keras_adv.detection.RejectingModel, got {type(guarded).__name__}.")
    if not isinstance(attack, Attack):
        raise TypeError(f"`attack` must be a keras_adv.attacks.Attack, got {type(attack).__name__}.")
    batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
    x, y_raw = _common.to_numpy(x, y, argument="x")
    labels = _common.labels_of(y_raw)
    clf = guarded.classifier

    clean_pred, clean_rej = guarded.predict_with_rejection(x, batch_size)
    clean_ok = clean_pred == labels
    clean_scores = guarded.detector_scores(x, batch_size)
    report = DetectionReport(clean_accuracy=float(clean_ok.mean()),
                             false_positive_rate=float(clean_rej.mean()), threshold=guarded.threshold)

    def summarise(x_adv):
        pred, rej = guarded.predict_with_rejection(x_adv, batch_size)
        fooled = (pred != labels) & clean_ok
        scores = guarded.detector_scores(x_adv, batch_size)
        n = clean_ok.sum()
        return {
            "roc_auc": roc_auc(clean_scores, scores[fooled]) if fooled.any() else None,
            "detection_rate": float(rej[fooled].mean()) if fooled.any() else None,
            "classifier_success_rate": float(fooled.sum() / n) if n else float("nan"),
            "system_success_rate": float((fooled & ~rej).sum() / n) if n else float("nan"),
            "num_fooling_classifier": int(fooled.sum()),
        }

    x_adv = _common.run_attack(attack, clf, x, y_raw, batch_size=batch_size, seed=seed)
    report.results["non_adaptive"] = summarise(x_adv)
    if adaptive_attack == "auto":
        adaptive_attack = copy.copy(attack)
        adaptive_attack.loss = adaptive_loss
        adaptive_attack._seed_generator = None
        adaptive_attack.name = f"{attack.name}+adaptive_loss"
    if adaptive_attack is not None:
        x_ad = _common.run_attack(adaptive_attack, guarded, x, y_raw, batch_size=batch_size, seed=seed)
        report.results["adaptive"] = summarise(x_ad)
    return report
