"""Schedules of the training budget ε and the adversarial weight λ, as Keras callbacks.

Every schedule computes the value of an epoch from the epoch number (and the
constructor's arguments), so a run resumed with
`keras.callbacks.BackupAndRestore` continues each schedule from the epoch it
had reached, in any callback order (tests/reliability/test_resume.py).
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import keras

from keras_adv.utils.validation import check_number

__all__ = ["EpsilonSchedule", "EpsilonRamp", "DelayedStart", "AdvWeightSchedule"]


def _call_schedule(schedule, epoch, current):
    """`schedule(epoch)` or `schedule(epoch, current)`, like `keras.callbacks.LearningRateScheduler`."""
    try:
        n_args = len(inspect.signature(schedule).parameters)
    except (TypeError, ValueError):
        n_args = 1
    return schedule(epoch, current) if n_args >= 2 else schedule(epoch)


def _require(model, attr, who):
    if not hasattr(type(model), attr):
        raise TypeError(
            f"{who} needs a keras_adv.AdversarialModel (a model with a `{attr}` variable); "
            f"got {type(model).__name__}."
        )


class _VariableSchedule(keras.callbacks.Callback):
    """Sets `model.<attr>` at the start of every epoch and logs it under `<attr>`."""

    attr = ""

    def __init__(self, verbose: int = 0):
        super().__init__()
        self.verbose = int(verbose)

    def value(self, epoch: int, current: float) -> float:
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        _require(self.model, self.attr, type(self).__name__)

    def on_epoch_begin(self, epoch, logs=None):
        current = getattr(self.model, self.attr)
        new = self.value(epoch, current)
        try:
            new = check_number(self.attr, new, minimum=0.0)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{type(self).__name__} returned an invalid value at epoch {epoch}: {e}") from None
        setattr(self.model, self.attr, new)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: {type(self).__name__} sets {self.attr} = {new:.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.attr] = getattr(self.model, self.attr)


class EpsilonSchedule(_VariableSchedule):
    """Sets the training budget ε from a function of the epoch.

    `schedule(epoch)` or `schedule(epoch, current_epsilon)` returns the ε of
    that epoch (epochs count from 0). The value is logged as `epsilon`.

    Example:

    ```python
    cb = keras_adv.callbacks.EpsilonSchedule(lambda epoch: min(0.3, 0.05 * (epoch + 1)))
    model.fit(x, y, epochs=10, callbacks=[cb])
    ```
    """

    attr = "epsilon"

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__(verbose)
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable (epoch) -> epsilon, got {schedule!r}.")
        self.schedule = schedule

    def value(self, epoch, current):
        return _call_schedule(self.schedule, epoch, current)


class EpsilonRamp(_VariableSchedule):
    """Linear ε ramp-up (curriculum; e.g. Gowal et al. 2018, Wong et al. 2020).

    Epoch `e` (from 0) trains with
    `ε_e = initial + (epsilon − initial)·clip((e − start_epoch + 1) / ramp_epochs, 0, 1)`,
    so the full `epsilon` is reached at epoch `start_epoch + ramp_epochs − 1`
    and epochs before `start_epoch` train with `initial` (clean training when
    0: a delayed start followed by a ramp). Logged as `epsilon`.

    Args:
        epsilon: the final ε; `None` takes the training attack's ε.
        ramp_epochs: number of epochs of the ramp (≥ 1).
        start_epoch: first epoch of the ramp.
        initial: ε before the ramp starts.
    """

    attr = "epsilon"

    def __init__(self, epsilon: Optional[float] = None, ramp_epochs: int = 5, *, start_epoch: int = 0,
                 initial: float = 0.0, verbose: int = 0):
        super().__init__(verbose)
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0, allow_none=True)
        self.ramp_epochs = check_number("ramp_epochs", ramp_epochs, minimum=1, integer=True)
        self.start_epoch = check_number("start_epoch", start_epoch, minimum=0, integer=True)
        self.initial = check_number("initial", initial, minimum=0.0)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.epsilon is None:
            self.epsilon = float(self.model.attack.epsilon)

    def value(self, epoch, current):
        frac = min(max((epoch - self.start_epoch + 1) / self.ramp_epochs, 0.0), 1.0)
        return self.initial + (self.epsilon - self.initial) * frac


class DelayedStart(_VariableSchedule):
    """Trains on clean inputs for the first `epochs` epochs, then adversarially.

    During the delay ε is 0, so the adversarial examples equal the clean
    inputs (any objective then reduces to clean training: `ce` is
    `(1+λ)·CE`, TRADES' KL and MART's regulariser vanish); afterwards ε is
    `epsilon`, by default the training attack's ε (`model.attack.epsilon`).
    The attack still runs during the delay. Logged as `epsilon`. To ramp ε up
    after the delay use `EpsilonRamp(start_epoch=epochs)` instead.

    The value of each epoch depends on the epoch number only, never on the
    model's current ε, so a run resumed by `keras.callbacks.BackupAndRestore`
    (which restores ε = 0 when it was killed during the delay) continues the
    schedule, whatever the order of the callbacks.

    Args:
        epochs: number of clean epochs (≥ 0).
        epsilon: ε after the delay; `None` takes the training attack's ε.
    """

    attr = "epsilon"

    def __init__(self, epochs: int, epsilon: Optional[float] = None, verbose: int = 0):
        super().__init__(verbose)
        self.epochs = check_number("epochs", epochs, minimum=0, integer=True)
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0, allow_none=True)
        self._target = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.epsilon is not None:
            self._target = self.epsilon
        else:  # the attack's configured ε: not the ε variable, which a restored checkpoint may hold at 0
            attack_eps = getattr(getattr(self.model, "attack", None), "epsilon", None)
            self._target = float(attack_eps if attack_eps is not None else self.model.epsilon)

    def value(self, epoch, current):
        return 0.0 if epoch < self.epochs else self._target

    def on_train_end(self, logs=None):
        if self._target is not None:
            self.model.epsilon = self._target


class AdvWeightSchedule(_VariableSchedule):
    """Sets the adversarial weight λ (β for TRADES/MART) from a function of the epoch.

    `schedule(epoch)` or `schedule(epoch, current)` returns λ ≥ 0 for that
    epoch (from 0). Logged as `adv_weight`.

    Example:

    ```python
    # TRADES with β rising from 1 to 6 over 10 epochs.
    cb = keras_adv.callbacks.AdvWeightSchedule(lambda e: 1.0 + 5.0 * min(e / 10, 1.0))
    ```
    """

    attr = "adv_weight"

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__(verbose)
        if not callable(schedule):
            raise TypeError(f"`schedule` must be callable (epoch) -> adv_weight, got {schedule!r}.")
        self.schedule = schedule

    def value(self, epoch, current):
        return _call_schedule(self.schedule, epoch, current)
