"""Constrained adaptive PGD (CAPGD) for tabular records in a `FeatureSpace`."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.attacks.apgd import step_size_checkpoint
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils.validation import check_number
from keras_adv.attacks.constrained import ConstrainedAttack

__all__ = ["CAPGD"]

#: What to do when a tabular model has no input gradient (the "no gradient" error's advice).
NO_GRADIENT_HINT = (
    "Use keras_adv.attacks.Evolutionary (gradient-free, same `domain`), or ConstrainedAutoAttack, which "
    "then runs its Evolutionary member only; or make the model differentiable (e.g. a straight-through "
    "estimator / BPDA, Athalye et al. 2018)."
)


@keras.saving.register_keras_serializable(package="keras_adv")
class CAPGD(ConstrainedAttack):
    """Constrained Adaptive PGD (Simonetto, Ghamizi & Cordy 2024, "Constrained
    Adaptive Attack: Effective Adversarial Attack Against Deep Neural Networks
    for Tabular Data"). Norms: L∞ and L2 on scaled features.

    Auto-PGD (Croce & Hein 2020) adapted to a `keras_adv.domains.FeatureSpace`:

    * the objective is the attack loss minus `penalty_weight` × the total
      violation of the domain's relations, so the ascent is pulled towards
      valid records;
    * steps move only mutable, non-derived features, in the scaled metric
      (`scale` of the domain), with APGD's momentum and step-size halving at
      checkpoints (restarting from the best point);
    * mutable one-hot groups, which the budget does not count, take a step
      of their own at every iteration: the group's gradient normalised by its
      largest entry, times the *relative* step size `step / ε` (2 at first,
      halved with the step), on the group's own [0, 1] scale, then the
      nearest one-hot record (argmax). A category switch is thus explored at
      any ε > 0 where its first-order gain is large, and the category settles
      as the step shrinks. (The reference implementation treats one-hot
      columns as budgeted coordinates of the scaled space, so a switch, a
      move of 1, is out of reach below ε = 0.5; keras_adv's budget leaves
      switches free, see docs/tabular.md.);
    * after every step the record is projected onto the ε-ball and
      repaired (clip, freeze immutable, hold monotone features on their
      allowed side of the clean record, round integers, re-project one-hot
      groups, recompute derived features); a monotone feature at its clean
      value takes no step the forbidden way;
    * success means misclassified *and* valid; per example the attack returns
      a successful valid record when one was found, else the valid record of
      highest objective (at worst the clean record).

    The first run starts at the clean record, further restarts at random
    points of the ball with every mutable one-hot group at a random category.

    Example:

    ```python
    space = keras_adv.domains.FeatureSpace.from_data(x_train, immutable=[0])
    attack = keras_adv.attacks.CAPGD(epsilon=0.1, domain=space, steps=50)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: budget ε on scaled features.
        domain: the `keras_adv.domains.FeatureSpace`.
        steps: iterations per run.
        restarts: runs (the first from the clean record).
        penalty_weight: weight of the relation violation in the objective.
        rho: APGD's oscillation threshold for halving the step.
        momentum: APGD's momentum.
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `targeted`, `loss`, `seed`, `check_inputs`, `name`.
    """

    #: CAPGD runs its restarts itself (the first from the clean record).
    independent_restarts = False

    def __init__(
        self,
        epsilon: float,
        *,
        domain,
        steps: int = 50,
        restarts: int = 1,
        penalty_weight: float = 1.0,
        rho: float = 0.75,
        momentum: float = 0.75,
        norm="linf",
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, domain=domain, norm=norm, **kwargs)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.restarts = check_number("restarts", restarts, minimum=1, integer=True)
        self.penalty_weight = check_number("penalty_weight", penalty_weight, minimum=0.0)
        self.rho = check_number("rho", rho, minimum=0.0)
        self.momentum = check_number("momentum", momentum, minimum=0.0)
        if self.momentum > 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum!r}.")

    @_no_autograph
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        seeds = tf.random.experimental.stateless_split(seed, self.restarts)

        def run(r):
            # the first run starts at the clean record, the others at random points of the ball
            start = tf.cond(r > 0, lambda: self.domain.random_start(x, epsilon, self.norm, seeds[r]), lambda: x)
            return self._single_run(model, x, y, epsilon, start, loss_fn)

        best, _, _ = self.strongest_of(self.restarts, lambda r: _reorder(run(r)))
        return best

    def _single_run(self, model, x, y, epsilon, x0, loss_fn):
        """One CAPGD run from `x0`. Returns (x_adv, valid success, objective)."""
        space, norm = self.domain, self.norm
        dtype = x.dtype
        batch = tf.shape(x)[0]
        name = type(self).__name__
        n_iter = self.steps
        n_check = max(int(0.22 * n_iter), 1)
        n_min = max(int(0.06 * n_iter), 1)
        size_decr = max(int(0.03 * n_iter), 1)
        weight = tf.constant(self.penalty_weight, tf.float32)

        def objective(z):
            outputs = model(z, training=False)
            return self.objective(loss_fn, y, outputs), outputs

        def project(z):
            return space.budget_project(x, z, epsilon, norm)

        def evaluate(z):
            # the model's gradient (the one place that reports "no gradient"), then the penalty's
            (obj, outputs), grad = value_and_gradient(objective, z, name=name, hint=NO_GRADIENT_HINT)
            if space.relations and self.penalty_weight > 0:
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    penalty = space.penalty(z)
                grad = grad - weight * tape.gradient(penalty, z, unconnected_gradients="zero")
                obj = obj - weight * penalty
            valid = space.is_valid(z, x, epsilon, norm)
            return obj, grad, self.is_successful(outputs, y) & valid, valid

        x0 = project(x0)
        obj0, grad0, ok0, valid0 = evaluate(x0)
        x0_safe = tf.where(valid0[:, None], x0, x)
        neg_inf = tf.fill([batch], tf.constant(-float("inf"), tf.float32))
        step0 = tf.fill([batch], 2.0 * tf.cast(epsilon, dtype))
        has_groups = bool(np.any(space.step_mask & space.is_categorical))
        eps_safe = tf.maximum(tf.cast(epsilon, dtype), tf.constant(1e-12, dtype))
        momentum = tf.cast(self.momentum, dtype)

        def body(i, x_adv, x_old, grad, step, x_best, g_best, l_best, x_out, found, l_out,
                 prev_loss, n_inc, counter, k, reduced_last, l_best_last):
            a = tf.where(i > 0, momentum, tf.ones([], dtype))
            # budgeted features move by `step` in the scaled metric; one-hot groups by the relative
            # step size step/ε on their own [0, 1] scale (their switches are outside the budget)
            move = step[:, None] * space.ascent_direction(grad, norm, x_adv, x)
            if has_groups:
                move += (step / eps_safe)[:, None] * space.categorical_direction(grad)
            z = project(x_adv + move)
            x_new = project(x_adv + a * (z - x_adv) + (1.0 - a) * (x_adv - x_old))
            loss, g_new, ok, valid = evaluate(x_new)
            # The returned record: the first success, else the valid record of highest objective.
            take = (ok & ~found) | (~found & valid & (loss > l_out))
            x_out = tf.where(take[:, None], x_new, x_out)
            l_out = tf.where(take, loss, l_out)
            found = found | ok
            (x_next, g_next, step, x_best, g_best, l_best, n_inc, counter, k, reduced_last,
             l_best_last) = step_size_checkpoint(
                loss, prev_loss, x_new, g_new, step, x_best, g_best, l_best, n_inc, counter, k,
                reduced_last, l_best_last, rho=self.rho, size_decr=size_decr, n_min=n_min,
                mask=lambda b: b[:, None])
            return (i + 1, x_next, x_adv, g_next, step, x_best, g_best, l_best, x_out, found, l_out,
                    loss, n_inc, counter, k, reduced_last, l_best_last)

        init = (
            tf.constant(0), x0, x0, grad0, step0, x0, grad0, obj0, x0_safe, ok0,
            tf.where(valid0, obj0, neg_inf), obj0, tf.zeros([batch], dtype), tf.constant(0),
            tf.constant(n_check), tf.ones([batch], tf.bool), obj0,
        )
        out = tf.while_loop(lambda i, *_: i < n_iter, body, init)
        return out[8], out[9], out[10]

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            restarts=self.restarts,
            penalty_weight=self.penalty_weight,
            rho=self.rho,
            momentum=self.momentum,
        )
        return config


def _reorder(out):
    """(x_adv, success, objective) -> (x_adv, objective, success), the order `strongest_of` takes."""
    x_adv, ok, obj = out
    return x_adv, obj, ok
