"""Carlini & Wagner's L2 attack."""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_adv.attacks import _scores
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils.validation import check_number

__all__ = ["CarliniWagnerL2"]

_ATANH_LIMIT = 1.0 - 1e-6


@keras.saving.register_keras_serializable(package="keras_adv")
class CarliniWagnerL2(Attack):
    """Carlini & Wagner L2 attack (Carlini & Wagner 2017, "Towards Evaluating
    the Robustness of Neural Networks"). Norm: L2.

    A minimal-perturbation attack. The change of variables
    `x' = lo + (hi − lo)·(tanh(w) + 1)/2` keeps every iterate inside `bounds`;
    Adam minimises `‖x' − x‖₂² + c·f(x')` over `w`, with the margin loss
    `f = max(z_y − max_{j≠y} z_j + κ, 0)` (targeted:
    `max(max_{j≠t} z_j − z_t + κ, 0)`) on the logits `z`. A per-example binary
    search over the constant `c` (`binary_search_steps` rounds starting at
    `initial_const`) trades distance for success. Per example the successful
    iterate of smallest L2 distance is returned, or the input unchanged when
    none was found.

    With `epsilon=None` (the default) the attack is unbounded; with an
    `epsilon`, only examples within ‖·‖₂ ≤ ε count as successes and the result
    is capped at ε by the base class.

    Example:

    ```python
    attack = keras_adv.attacks.CarliniWagnerL2(steps=100, binary_search_steps=5)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: optional L2 cap (None: minimal perturbation, unbounded).
        confidence: the margin κ ≥ 0 required of a success.
        steps: Adam steps per binary-search round.
        binary_search_steps: rounds of the binary search over `c`.
        initial_const: the first `c`.
        learning_rate: Adam's learning rate on `w` (default 0.05: the paper's
            0.01 assumes thousands of steps; with ~100 steps it stalls short of
            the boundary).
        abort_early: stop a round once the objective stops improving
            (checked every `steps // 10` steps), as in the original code.
        **kwargs: `bounds`, `targeted`, `seed`, `name` (see
            `keras_adv.attacks.Attack`); the norm is L2 (any other is refused).
    """

    allows_unbounded = True
    minimal_perturbation = True
    supported_norms = ("l2",)

    def __init__(
        self,
        epsilon: Optional[float] = None,
        *,
        confidence: float = 0.0,
        steps: int = 100,
        binary_search_steps: int = 5,
        initial_const: float = 1e-2,
        learning_rate: float = 5e-2,
        abort_early: bool = True,
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, norm=kwargs.pop("norm", "l2"), **kwargs)
        self.confidence = check_number("confidence", confidence, minimum=0.0)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.binary_search_steps = check_number(
            "binary_search_steps", binary_search_steps, minimum=1, integer=True
        )
        self.initial_const = check_number("initial_const", initial_const, minimum=0.0, strict=True)
        self.learning_rate = check_number("learning_rate", learning_rate, minimum=0.0, strict=True)
        self.abort_early = bool(abort_early)

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        lo, hi = self.bounds
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(
                f"{type(self).__name__} maps inputs through tanh onto the domain's bounds, which "
                "must be finite; got an unbounded side. Use keras_adv.attacks.PGD(norm='l2') instead."
            )
        dtype = x.dtype
        labels = _scores.label_indices(y)
        batch = tf.shape(x)[0]
        name = type(self).__name__
        kappa = tf.cast(self.confidence, dtype)

        def to_x(w):
            return lo + (hi - lo) * (tf.tanh(w) + 1.0) / 2.0

        w0 = tf.atanh(tf.clip_by_value((x - lo) / (hi - lo) * 2.0 - 1.0, -_ATANH_LIMIT, _ATANH_LIMIT))

        def margin_terms(x_adv):
            scores = _scores.class_scores(model(x_adv, training=False), name, model=model)
            z_y, z_other = _scores.true_and_other(scores, labels)
            # real < 0 ⇔ the example is adversarial with margin κ.
            real = (z_other - z_y) if self.targeted else (z_y - z_other)
            return real + kappa, scores

        def l2sq(x_adv):
            return tf.reduce_sum(tf.reshape(tf.square(x_adv - x), [batch, -1]), axis=1)

        def successful(marg, scores):
            pred = tf.argmax(scores, axis=-1, output_type=tf.int32)
            on_target = tf.equal(pred, labels) if self.targeted else tf.not_equal(pred, labels)
            return (marg <= 0.0) & on_target

        # The distance term always has a gradient: check the model's part once, so a
        # model without input gradient raises NoInputGradientError instead of a silent no-op.
        value_and_gradient(lambda x_: margin_terms(x_)[0], x, name=name)
        abort_every = max(self.steps // 10, 1)

        def run_round(const, best_l2, best_adv):
            # Adam on w from w0, for `steps` steps.
            def objective(w):
                x_adv = to_x(w)
                marg, scores = margin_terms(x_adv)
                dist = l2sq(x_adv)
                return dist + const * tf.maximum(marg, 0.0), (x_adv, marg, scores, dist)

            def body(i, w, m, v, best_l2, best_adv, round_ok, prev_loss, done):
                (loss, (x_adv, marg, scores, dist)), grad = value_and_gradient(objective, w, name=name)
                total = tf.reduce_sum(loss)
                # Record the current iterate before stepping (its loss is `loss`).
                ok = successful(marg, scores)
                if epsilon is not None:
                    ok &= dist <= tf.square(epsilon)
                improved = ok & (dist < best_l2)
                best_l2 = tf.where(improved, dist, best_l2)
                best_adv = tf.where(_scores.batch_mask(improved, x), x_adv, best_adv)
                round_ok = round_ok | ok
                # Adam update (bias-corrected).
                t = tf.cast(i + 1, dtype)
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * tf.square(grad)
                m_hat = m / (1.0 - tf.pow(0.9, t))
                v_hat = v / (1.0 - tf.pow(0.999, t))
                w = w - self.learning_rate * m_hat / (tf.sqrt(v_hat) + 1e-8)
                if self.abort_early:
                    check = tf.equal(tf.math.floormod(i + 1, abort_every), 0)
                    stalled = total > prev_loss * 0.9999
                    done = check & stalled
                    prev_loss = tf.where(check, total, prev_loss)
                return i + 1, w, m, v, best_l2, best_adv, round_ok, prev_loss, done

            zeros = tf.zeros_like(w0)
            init = (
                tf.constant(0), w0, zeros, zeros, best_l2, best_adv,
                tf.zeros([batch], tf.bool), tf.constant(float("inf"), dtype), tf.constant(False),
            )
            out = tf.while_loop(
                lambda i, *rest: (i < self.steps) & ~rest[-1], body, init
            )
            _, _, _, _, best_l2, best_adv, round_ok, _, _ = out
            return best_l2, best_adv, round_ok

        def search_body(r, const, lower, upper, best_l2, best_adv):
            best_l2, best_adv, round_ok = run_round(const, best_l2, best_adv)
            upper = tf.where(round_ok, tf.minimum(upper, const), upper)
            lower = tf.where(round_ok, lower, tf.maximum(lower, const))
            const = tf.where(
                upper < 1e9, (lower + upper) / 2.0, const * 10.0
            )
            return r + 1, const, lower, upper, best_l2, best_adv

        const0 = tf.fill([batch], tf.cast(self.initial_const, dtype))
        init = (
            tf.constant(0), const0, tf.zeros([batch], dtype), tf.fill([batch], tf.cast(1e10, dtype)),
            tf.fill([batch], tf.cast(float("inf"), dtype)), x,
        )
        _, _, _, _, _, best_adv = tf.while_loop(
            lambda r, *_: r < self.binary_search_steps, search_body, init
        )
        return best_adv

    def get_config(self):
        config = super().get_config()
        del config["norm"]
        config.update(
            confidence=self.confidence,
            steps=self.steps,
            binary_search_steps=self.binary_search_steps,
            initial_const=self.initial_const,
            learning_rate=self.learning_rate,
            abort_early=self.abort_early,
        )
        return config
