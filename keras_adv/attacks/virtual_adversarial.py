"""Virtual adversarial perturbation by power iteration (the attack of VAT)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_adv import norms as norms_lib
from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number

__all__ = ["VirtualAdversarial"]


def _l2_unit(v):
    """`v / ‖v‖₂` per example (a zero vector stays zero)."""
    flat = tf.reshape(v, [tf.shape(v)[0], -1])
    norm = tf.norm(flat, axis=1)
    norm = tf.reshape(norm, [-1] + [1] * (len(v.shape) - 1))
    return tf.math.divide_no_nan(v, norm)


@keras.saving.register_keras_serializable(package="keras_adv")
class VirtualAdversarial(Attack):
    """Virtual adversarial perturbation (Miyato, Maeda, Koyama & Ishii 2018,
    "Virtual Adversarial Training: A Regularization Method for Supervised and
    Semi-Supervised Learning", IEEE TPAMI).

    Approximates the direction `r` of norm ε that most increases the
    attack loss by power iteration on its curvature: start from a random
    unit vector `d`, then `power_iterations` times set
    `d ← ∇_r L(x + ξ·d) / ‖·‖₂`; the result is `x + ε·d` (for the L2 norm;
    other norms take the norm's steepest-ascent direction of the last
    gradient). With `objective="vat"` in `keras_adv.AdversarialModel` the
    loss is `KL(p(·|x) ‖ p(·|x + r))`, which needs no label, so unlabeled
    examples contribute; with any other objective it is the usual loss.

    Example:

    ```python
    model = keras_adv.AdversarialModel(
        base, attack=keras_adv.attacks.VirtualAdversarial(epsilon=2.0),
        objective="vat", adv_weight=1.0)
    ```

    Args:
        epsilon: the perturbation's norm ε.
        xi: the finite-difference scale ξ of the power iteration (the
            paper's 1e-6 for images; its text code uses 0.1 on embeddings).
        power_iterations: number of power iterations K (the paper finds 1
            enough).
        norm: `"l2"` (default, as in the paper), `"linf"` or `"l1"`.
        **kwargs: `bounds`, `targeted`, `loss`, `seed`, `name`
            (see `keras_adv.attacks.Attack`).
    """

    def __init__(self, epsilon: float, *, xi: float = 1e-6, power_iterations: int = 1,
                 norm="l2", **kwargs):
        super().__init__(epsilon=epsilon, norm=norm, **kwargs)
        self.xi = check_number("xi", xi, minimum=0.0, strict=True)
        self.power_iterations = check_number("power_iterations", power_iterations, minimum=1, integer=True)

    def power_iteration(self, model, x, y, d, loss_fn):
        """One power-iteration step from direction `d`: `∇_r L(x + ξ·d̂)` normalised to unit L2."""
        grad, _, _ = self.input_gradient(model, x + self.xi * _l2_unit(d), y, loss_fn)
        return _l2_unit(grad)

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        d = tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype)

        def body(i, d):
            return i + 1, self.power_iteration(model, x, y, d, loss_fn)

        _, d = tf.while_loop(lambda i, _: i < self.power_iterations, body, (tf.constant(0), d))
        direction = d if isinstance(self.norm, norms_lib.L2) else self.norm.normalize(d)
        return x + epsilon * direction

    def get_config(self):
        config = super().get_config()
        config.update(xi=self.xi, power_iterations=self.power_iterations)
        return config
