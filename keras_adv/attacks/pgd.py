"""Projected Gradient Descent."""

from __future__ import annotations

from typing import Optional

import keras

from keras_adv.attacks.gradient_attack import GradientAttack

__all__ = ["PGD"]


@keras.saving.register_keras_serializable(package="keras_adv")
class PGD(GradientAttack):
    """Projected Gradient Descent (Madry et al. 2018, "Towards Deep Learning
    Models Resistant to Adversarial Attacks").

    `steps` steps of normalised-gradient ascent in the attack's norm — `sign`
    steps for L∞, unit-L2 steps for L2, sparse steps for L1 — each followed by
    projection onto the ε-ball and clipping to `bounds`. With `restarts > 1`
    the attack is run from several random starts and, per example, the
    strongest result is kept.

    Example:

    ```python
    attack = keras_adv.attacks.PGD(epsilon=0.3, steps=40, restarts=3)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: budget ε.
        steps: number of steps (default 10).
        step_size: step size; defaults to 2.5·ε/steps.
        norm: `"linf"` (default), `"l2"` or `"l1"`.
        random_start: start each run from a random point of the ball (default True).
        restarts: number of runs (default 1).
        **kwargs: `bounds`, `targeted`, `loss`, `seed`, `name`
            (see `keras_adv.attacks.Attack`).
    """

    def __init__(
        self,
        epsilon: float,
        *,
        steps: int = 10,
        step_size: Optional[float] = None,
        norm="linf",
        random_start: bool = True,
        restarts: int = 1,
        **kwargs,
    ):
        super().__init__(
            epsilon=epsilon, steps=steps, step_size=step_size, norm=norm,
            random_start=random_start, restarts=restarts, **kwargs
        )
