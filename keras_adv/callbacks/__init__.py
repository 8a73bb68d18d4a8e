"""Training callbacks: ε / λ schedules and the catastrophic-overfitting guard.

All of them change `model.epsilon` / `model.adv_weight`, which are variables
read inside the compiled train step, so schedules never cause a retrace.
"""

from keras_adv.callbacks.overfitting_guard import CatastrophicOverfittingGuard
from keras_adv.callbacks.schedules import (
    AdvWeightSchedule,
    DelayedStart,
    EpsilonRamp,
    EpsilonSchedule,
)

__all__ = [
    "AdvWeightSchedule",
    "CatastrophicOverfittingGuard",
    "DelayedStart",
    "EpsilonRamp",
    "EpsilonSchedule",
]
