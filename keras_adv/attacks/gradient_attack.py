"""The iterative gradient loop shared by FGSM and PGD (written once).

Restarts are the base class's (`Attack.perturb_with_restarts`).

An attack here is "norm × step rule": each step ascends the attack objective
along the norm's steepest-ascent direction, then returns to the ε-ball and the
bounds. The loop is a `tf.while_loop`, so the graph does not grow with `steps`.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number

__all__ = ["GradientAttack"]


class GradientAttack(Attack):
    """Iterative first-order attack: `steps` normalised-gradient steps with projection.

    Args:
        epsilon: budget ε in `norm`.
        steps: number of gradient steps (≥ 1).
        step_size: absolute step size; `None` uses `default_step_size(ε)`.
        random_start: start from a uniformly random point of the ε-ball.
        restarts: independent runs; per example the strongest result is kept
            (a successful example first, then the highest loss).
        **kwargs: `norm`, `bounds`, `targeted`, `loss`, `seed`, `name`, see
            `keras_adv.attacks.Attack`.
    """

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int,
        step_size: Optional[float] = None,
        random_start: bool = False,
        restarts: int = 1,
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, **kwargs)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.step_size = check_number("step_size", step_size, minimum=0.0, strict=True, allow_none=True)
        self.random_start = bool(random_start)
        self.restarts = self._check_restarts(restarts)

    def default_step_size(self, epsilon):
        """Madry et al.'s rule of thumb: 2.5·ε / steps."""
        return 2.5 * epsilon / self.steps

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        """One run (restarts are combined by the base class)."""
        step_size = self.step_size if self.step_size is not None else self.default_step_size(epsilon)
        step_size = tf.cast(step_size, x.dtype)
        if self.random_start:
            delta = self.norm.random_start(tf.shape(x), epsilon, seed, x.dtype)
            x0 = self.enforce_budget(x, self.domain.random_start(x, delta), epsilon)
        else:
            x0 = x

        def body(i, x_adv):
            grad, _, _ = self.input_gradient(model, x_adv, y, loss_fn)
            direction = self.norm.ascent_direction(
                self.domain.restrict(grad, x), x_adv, self.bounds, step_size=step_size)
            x_adv = x_adv + step_size * direction
            return i + 1, self.enforce_budget(x, x_adv, epsilon)

        _, x_adv = tf.while_loop(lambda i, _: i < self.steps, body, (tf.constant(0), x0))
        return x_adv

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            step_size=self.step_size,
            random_start=self.random_start,
            restarts=self.restarts,
        )
        return config
