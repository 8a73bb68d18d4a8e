"""Auto-PGD (APGD) with cross-entropy and DLR losses."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv.attacks import _scores
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils import trust
from keras_adv.utils.validation import check_number

__all__ = ["APGD"]

_LOSSES = ("ce", "dlr")


@keras.saving.register_keras_serializable(package="keras_adv")
class APGD(Attack):
    """Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial
    robustness with an ensemble of diverse parameter-free attacks"). Norms:
    L∞ and L2.

    PGD without a step size to tune: the step starts at 2ε and is halved at
    checkpoints (after `0.22·steps` iterations, then periods shrinking by
    `0.03·steps` down to `0.06·steps`) whenever, since the last checkpoint,
    the loss increased in at most a fraction `rho` of the steps, or the best
    loss did not improve and the step was not just halved. A halving restarts
    from the best point found so far. Steps use momentum 0.75. Per example
    the attack returns a misclassified point when one was found, else the
    point of highest loss.

    Losses: `"ce"` (cross-entropy, or the attack's `loss` override) and
    `"dlr"`, the Difference of Logits Ratio
    `−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)`, invariant to shifts and scales
    of the logits.

    Targeting: with `targeted=True`, `y` holds the target classes. With
    `n_target_classes=n` (and `targeted=False`, `y` the true labels) the
    attack is APGD-T: for each of the `n` classes ranked 2nd, 3rd, ... by the
    model on the clean input, it runs the targeted version (targeted DLR
    `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)` for `loss="dlr"`) and keeps,
    per example, the first success.

    Example:

    ```python
    apgd_ce = keras_adv.attacks.APGD(epsilon=8 / 255, loss="ce", steps=100)
    apgd_t = keras_adv.attacks.APGD(epsilon=8 / 255, loss="dlr", n_target_classes=9)
    ```

    Args:
        epsilon: budget ε.
        loss: `"ce"` or `"dlr"`.
        steps: iterations per run.
        restarts: runs from independent random starts, per example the strongest
            kept (for APGD-T each run covers every target class).
        n_target_classes: None (untargeted / targeted by `y`) or the number of
            runner-up classes targeted in turn (APGD-T).
        rho: the oscillation threshold of the checkpoints (0.75).
        momentum: weight of the new step against the previous one (0.75).
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `bounds`, `targeted`, `seed`, `name` (see `keras_adv.attacks.Attack`).
    """

    # Set by AutoAttack on its members: accept single-unit (binary) and 2-3 class models.
    _few_classes_ok = False

    supported_norms = ("linf", "l2")

    def __init__(
        self,
        epsilon: float,
        *,
        loss: str = "ce",
        steps: int = 100,
        restarts: int = 1,
        n_target_classes: Optional[int] = None,
        rho: float = 0.75,
        momentum: float = 0.75,
        norm="linf",
        **kwargs,
    ):
        # `loss` here names APGD's loss; a Keras loss override for "ce" goes in `ce_loss`.
        ce_loss = kwargs.pop("ce_loss", None)
        super().__init__(epsilon=epsilon, norm=norm, loss=ce_loss, **kwargs)
        if not isinstance(loss, str) or loss.lower() not in _LOSSES:
            raise ValueError(f"`loss` must be one of {_LOSSES}, got {loss!r}.")
        self.apgd_loss = loss.lower()
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.restarts = self._check_restarts(restarts)
        self.n_target_classes = check_number(
            "n_target_classes", n_target_classes, minimum=1, integer=True, allow_none=True
        )
        if self.n_target_classes is not None and self.targeted:
            raise ValueError(
                "`n_target_classes` (APGD-T: targets chosen among the runner-up classes) "
                "cannot be combined with `targeted=True` (targets given in `y`)."
            )
        self.rho = check_number("rho", rho, minimum=0.0)
        self.momentum = check_number("momentum", momentum, minimum=0.0)
        if self.momentum > 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum!r}.")

    # --------------------------------------------------------------- loss
    def _make_objective(self, model, y, target, loss_fn):
        """Per-example objective to maximise at `x_adv`, and the model outputs."""
        name = type(self).__name__
        labels = _scores.label_indices(y)

        def fn(x_adv):
            outputs = model(x_adv, training=False)
            if self.apgd_loss == "ce":
                if target is not None:
                    obj = -tf.cast(loss_fn(target, outputs), tf.float32)
                else:
                    obj = self.objective(loss_fn, y, outputs)
                return obj, outputs
            scores = _scores.class_scores(outputs, name, self._few_classes_ok, model)
            if not self._few_classes_ok:
                _check_classes(scores, 4 if (target is not None or self.targeted) else 3, name)
            if target is not None:
                obj = _scores.dlr_targeted(scores, labels, target)
            elif self.targeted:
                # Target t given in y: push z_t above the best other class.
                z_t, z_other = _scores.true_and_other(scores, labels)
                obj = -(z_other - z_t) / _scores.dlr_targeted_scale(scores)
            else:
                obj = _scores.dlr(scores, labels)
            return obj, outputs

        return fn

    # ------------------------------------------------------------ perturb
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        """One run (restarts are combined by the base class); APGD-T runs every target class."""
        if self.n_target_classes is None:
            return self._single_run(model, x, y, None, epsilon, seed, loss_fn)[0]

        scores = _scores.class_scores(model(x, training=False), type(self).__name__, self._few_classes_ok, model)
        num_classes = scores.shape[-1]
        n_targets = self.n_target_classes
        if num_classes is not None:
            n_targets = min(n_targets, num_classes - 1)
        ranked = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
        seeds = tf.random.experimental.stateless_split(seed, n_targets)
        labels = _scores.label_indices(y)

        def run(t):
            target = ranked[:, t + 1]
            # Where the clean prediction is wrong, the runner-up may be y itself: use the top class then.
            target = tf.where(tf.equal(target, labels), ranked[:, 0], target)
            cand, ok, obj = self._single_run(model, x, y, target, epsilon, seeds[t], loss_fn)
            return cand, obj, ok

        # Objectives of different targets do not compare: keep the first success per example.
        return self.strongest_of(n_targets, run, first_success=True)[0]

    def restart_score(self, model, x_adv, y, loss_fn):
        # Restarts compare by APGD's own loss (CE or DLR), success first.
        obj, outputs = self._make_objective(model, y, None, loss_fn)(x_adv)
        return obj, self.is_successful(outputs, y)

    def _single_run(self, model, x, y, target, epsilon, seed, loss_fn):
        """One APGD run. Returns (x_adv, success, best objective)."""
        dtype = x.dtype
        batch = tf.shape(x)[0]
        objective = self._make_objective(model, y, target, loss_fn)
        name = type(self).__name__
        n_iter = self.steps
        n_check = max(int(0.22 * n_iter), 1)
        n_min = max(int(0.06 * n_iter), 1)
        size_decr = max(int(0.03 * n_iter), 1)

        def project(z):
            return self.enforce_budget(x, z, epsilon)

        def mask(m):
            return _scores.batch_mask(m, x)

        def success(outputs):
            # APGD-T counts misclassification of the true label, like APGD-CE.
            return self.is_successful(outputs, y)

        # Random start on the sphere/box surface scaled to ε (as in the reference code).
        if self.norm.name == "linf":
            t = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0, dtype=dtype)
            t = t / tf.maximum(tf.reduce_max(tf.abs(t), axis=list(range(1, len(x.shape))), keepdims=True), 1e-12)
        else:
            t = self.norm.normalize(tf.random.stateless_normal(tf.shape(x), seed, dtype=dtype))
        x0 = project(x + epsilon * t)
        (obj0, out0), grad0 = value_and_gradient(objective, x0, name=name)
        ok0 = success(out0)
        eps_b = tf.cast(epsilon, dtype)
        step0 = tf.fill([batch], 2.0 * eps_b)
        momentum = tf.cast(self.momentum, dtype)

        def body(i, x_adv, x_old, grad, step, x_best, g_best, l_best, x_succ, found,
                 prev_loss, n_inc, counter, k, reduced_last, l_best_last):
            a = tf.where(i > 0, momentum, tf.ones([], dtype))
            mom = x_adv - x_old
            z = project(x_adv + mask(step) * self.norm.normalize(grad))
            x_new = project(x_adv + a * (z - x_adv) + (1.0 - a) * mom)
            (loss, outputs), g_new = value_and_gradient(objective, x_new, name=name)
            ok = success(outputs)
            x_succ = tf.where(mask(ok), x_new, x_succ)
            found = found | ok
            (x_next, g_next, step, x_best, g_best, l_best, n_inc, counter, k, reduced_last,
             l_best_last) = step_size_checkpoint(
                loss, prev_loss, x_new, g_new, step, x_best, g_best, l_best, n_inc, counter, k,
                reduced_last, l_best_last, rho=self.rho, size_decr=size_decr, n_min=n_min, mask=mask)
            return (i + 1, x_next, x_adv, g_next, step, x_best, g_best, l_best, x_succ, found,
                    loss, n_inc, counter, k, reduced_last, l_best_last)

        init = (
            tf.constant(0), x0, x0, grad0, step0, x0, grad0, obj0, x0, ok0,
            obj0, tf.zeros([batch], dtype), tf.constant(0), tf.constant(n_check),
            tf.ones([batch], tf.bool), obj0,
        )
        out = tf.while_loop(lambda i, *_: i < n_iter, body, init)
        x_best, l_best, x_succ, found = out[5], out[7], out[8], out[9]
        return tf.where(mask(found), x_succ, x_best), found, l_best

    def get_config(self):
        config = super().get_config()
        loss = config.pop("loss")
        config.update(
            loss=self.apgd_loss,
            ce_loss=loss,
            steps=self.steps,
            restarts=self.restarts,
            n_target_classes=self.n_target_classes,
            rho=self.rho,
            momentum=self.momentum,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(trust.check_attack_config(config, cls.__name__, attack_class=Attack))
        if config.get("ce_loss") is not None:
            config["ce_loss"] = keras.saving.deserialize_keras_object(config["ce_loss"])
        return cls(**config)



def step_size_checkpoint(loss, prev_loss, x_new, g_new, step, x_best, g_best, l_best, n_inc, counter, k,
                         reduced_last, l_best_last, *, rho, size_decr, n_min, mask):
    """APGD's per-example bookkeeping after one step (Croce & Hein 2020, §3.2), shared by APGD and CAPGD.

    Tracks the best point, and at each checkpoint (every `k` steps) halves the
    step size and restarts from the best point where the loss oscillated (fewer
    than `rho·k` increases) or stopped improving; the checkpoint interval then
    shrinks by `size_decr` down to `n_min`. `mask(b)` broadcasts a per-example
    boolean to the shape of `x`. Returns `(x_next, g_next, step, x_best, g_best,
    l_best, n_inc, counter, k, reduced_last, l_best_last)`.
    """
    dtype = step.dtype
    n_inc = n_inc + tf.cast(loss > prev_loss, dtype)
    improved = loss > l_best
    x_best = tf.where(mask(improved), x_new, x_best)
    g_best = tf.where(mask(improved), g_new, g_best)
    l_best = tf.where(improved, loss, l_best)
    counter = counter + 1
    at_check = tf.equal(counter, k)
    oscillating = n_inc <= tf.cast(k, dtype) * rho
    no_improvement = ~reduced_last & (l_best_last >= l_best)
    halve = at_check & (oscillating | no_improvement)
    step = tf.where(halve, step / 2.0, step)
    x_next = tf.where(mask(halve), x_best, x_new)
    g_next = tf.where(mask(halve), g_best, g_new)
    reduced_last = tf.where(at_check, halve, reduced_last)
    l_best_last = tf.where(at_check, l_best, l_best_last)
    n_inc = tf.where(at_check, tf.zeros_like(n_inc), n_inc)
    k = tf.where(at_check, tf.maximum(k - size_decr, n_min), k)
    counter = tf.where(at_check, 0, counter)
    return x_next, g_next, step, x_best, g_best, l_best, n_inc, counter, k, reduced_last, l_best_last

def _check_classes(scores, minimum, name):
    n = scores.shape[-1]
    if n is not None and n < minimum:
        raise ValueError(
            f"{name}: the DLR loss needs at least {minimum} classes, the model outputs {n}. "
            "Use loss='ce'."
        )
