"""Fast Gradient (Sign) Method."""

from __future__ import annotations

from typing import Optional

import keras

from keras_adv.attacks.gradient_attack import GradientAttack

__all__ = ["FGSM"]


@keras.saving.register_keras_serializable(package="keras_adv")
class FGSM(GradientAttack):
    """Fast Gradient Sign Method (Goodfellow et al. 2015, "Explaining and
    Harnessing Adversarial Examples").

    One step of size `step_size` (default ε) along the steepest-ascent
    direction of the loss in the attack's norm: `sign(∇ₓL)` for L∞ (FGSM),
    `∇ₓL / ‖∇ₓL‖₂` for L2 (the "fast gradient method").

    With `random_start=True` and `step_size=1.25 * epsilon` this is FGSM-RS,
    the attack of "Fast is better than free" (Wong et al. 2020).

    Example:

    ```python
    attack = keras_adv.attacks.FGSM(epsilon=0.1)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: budget ε.
        norm: `"linf"` (default), `"l2"` or `"l1"`.
        random_start: start from a uniform random point of the ε-ball.
        step_size: the step; defaults to ε.
        **kwargs: `bounds`, `targeted`, `loss`, `seed`, `name`
            (see `keras_adv.attacks.Attack`).
    """

    def __init__(
        self,
        epsilon: float,
        *,
        norm="linf",
        random_start: bool = False,
        step_size: Optional[float] = None,
        **kwargs,
    ):
        for arg in ("steps", "restarts"):
            if arg in kwargs:
                raise TypeError(
                    f"FGSM takes one step from one start and has no `{arg}` argument (got "
                    f"{arg}={kwargs[arg]!r}); use keras_adv.attacks.PGD(epsilon, steps=..., "
                    "restarts=...) for an iterative attack."
                )
        super().__init__(
            epsilon=epsilon, steps=1, step_size=step_size, random_start=random_start,
            norm=norm, restarts=1, **kwargs
        )

    def default_step_size(self, epsilon):
        return epsilon

    def get_config(self):
        config = super().get_config()
        del config["steps"], config["restarts"]
        return config
