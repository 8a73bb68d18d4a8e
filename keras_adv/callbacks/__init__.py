"""Keras callbacks for adversarial training.

The ε / λ schedules change `model.epsilon` / `model.adv_weight`, which are
variables read inside the compiled train step, so they never cause a retrace.
"""

from keras_adv.callbacks.overfitting_guard import CatastrophicOverfittingGuard
from keras_adv.callbacks.schedules import (
    AdvWeightSchedule,
    DelayedStart,
    EpsilonRamp,
    EpsilonSchedule,
)
from keras_adv.callbacks.tensorboard import AdversarialImages

__all__ = [
    "AdversarialImages",
    "AdvWeightSchedule",
    "CatastrophicOverfittingGuard",
    "DelayedStart",
    "EpsilonRamp",
    "EpsilonSchedule",
]
