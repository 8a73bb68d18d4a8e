"""The iterative gradient loop shared by FGSM and PGD (written once).

An attack here is "norm × step rule": each step ascends the attack objective
along the norm's steepest-ascent direction, then returns to the ε-ball and the
bounds. The loop is a `tf.while_loop`, so the graph does not grow with `steps`.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from keras_adv.attacks.attack import Attack, _check_number

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
        self.steps = _check_number("steps", steps, minimum=1, integer=True)
        self.step_size = _check_number("step_size", step_size, minimum=0.0, strict=True, allow_none=True)
        self.random_start = bool(random_start)
        self.restarts = _check_number("restarts", restarts, minimum=1, integer=True)

    def default_step_size(self, epsilon):
        """Madry et al.'s rule of thumb: 2.5·ε / steps."""
        return 2.5 * epsilon / self.steps

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        step_size = self.step_size if self.step_size is not None else self.default_step_size(epsilon)
        step_size = tf.cast(step_size, x.dtype)
        if self.restarts == 1:
            return self._single_run(model, x, y, epsilon, seed, loss_fn, step_size)

        seeds = tf.random.experimental.stateless_split(seed, self.restarts)

        def evaluate(x_adv):
            outputs = model(x_adv, training=False)
            return self.objective(loss_fn, y, outputs), self.is_successful(outputs, y)

        best = self._single_run(model, x, y, epsilon, seeds[0], loss_fn, step_size)
        best_obj, best_ok = evaluate(best)

        def body(r, best, best_obj, best_ok):
            cand = self._single_run(model, x, y, epsilon, seeds[r], loss_fn, step_size)
            obj, ok = evaluate(cand)
            return (r + 1,) + self.keep_stronger(best, best_obj, best_ok, cand, obj, ok)

        _, best, _, _ = tf.while_loop(
            lambda r, *_: r < self.restarts, body, (tf.constant(1), best, best_obj, best_ok)
        )
        return best

    def _single_run(self, model, x, y, epsilon, seed, loss_fn, step_size):
        if self.random_start:
            x0 = self.enforce_budget(x, x + self.norm.random_start(tf.shape(x), epsilon, seed, x.dtype), epsilon)
        else:
            x0 = x

        def body(i, x_adv):
            grad, _, _ = self.input_gradient(model, x_adv, y, loss_fn)
            x_adv = x_adv + step_size * self.norm.ascent_direction(grad, x_adv, self.bounds)
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
