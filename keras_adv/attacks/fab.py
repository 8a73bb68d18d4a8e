"""FAB: the Fast Adaptive Boundary attack, targeted version (FAB-T)."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv.attacks import _scores
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils.validation import check_number

__all__ = ["FAB"]


def _flat(x):
    return tf.reshape(x, [tf.shape(x)[0], -1])


def _project_linf(t, w, r, lo, hi):
    """Minimal-L∞ `d` with `w·d ≥ r` and `lo ≤ t + d ≤ hi` (rows of flat tensors; exact, sort-based).

    When the constraint cannot be met inside the box, `d` moves every
    coordinate as far as the box allows in the direction of `w`.
    """
    caps = tf.where(w > 0, hi - t, tf.where(w < 0, t - lo, tf.zeros_like(t)))
    aw = tf.abs(w)
    order = tf.argsort(caps, axis=1)
    c = tf.gather(caps, order, batch_dims=1)
    a = tf.gather(aw, order, batch_dims=1)
    cum_ac = tf.cumsum(a * c, axis=1)
    cum_a = tf.cumsum(a, axis=1)
    total_a = cum_a[:, -1:]
    g = cum_ac + c * (total_a - cum_a)  # g(λ) at each breakpoint λ = c_k (non-decreasing)
    reached = g >= r[:, None]
    feasible = tf.reduce_any(reached, axis=1)
    k = tf.argmax(tf.cast(reached, tf.int32), axis=1, output_type=tf.int32)
    prev_ac = tf.where(k > 0, tf.gather(cum_ac, tf.maximum(k - 1, 0), batch_dims=1), 0.0)
    prev_a = tf.where(k > 0, tf.gather(cum_a, tf.maximum(k - 1, 0), batch_dims=1), 0.0)
    lam = (r - prev_ac) / tf.maximum(total_a[:, 0] - prev_a, 1e-12)
    lam = tf.where(feasible, lam, c[:, -1])
    lam = tf.where(r <= 0.0, tf.zeros_like(lam), tf.maximum(lam, 0.0))
    return tf.sign(w) * tf.minimum(lam[:, None], caps)


def _project_l2(t, w, r, lo, hi, iterations=40):
    """Minimal-L2 `d` with `w·d ≥ r` and `lo ≤ t + d ≤ hi`: `d = clip(μw)`, μ by bisection (log scale)."""
    low, high = lo - t, hi - t
    aw = tf.abs(w)
    limit = tf.where(aw > 0, tf.maximum(-low, high) / tf.maximum(aw, 1e-30), tf.zeros_like(aw))
    mu_max = tf.maximum(tf.reduce_max(limit, axis=1), 1e-12)

    def h(mu):
        return tf.reduce_sum(w * tf.clip_by_value(mu[:, None] * w, low, high), axis=1)

    log_lo = tf.fill(tf.shape(r), tf.math.log(1e-12))
    log_hi = tf.math.log(mu_max)

    def body(i, log_lo, log_hi):
        mid = 0.5 * (log_lo + log_hi)
        ok = h(tf.exp(mid)) >= r
        return i + 1, tf.where(ok, log_lo, mid), tf.where(ok, mid, log_hi)

    _, _, log_hi = tf.while_loop(lambda i, *_: i < iterations, body, (tf.constant(0), log_lo, log_hi))
    mu = tf.where(r <= 0.0, tf.zeros_like(r), tf.exp(log_hi))
    return tf.clip_by_value(mu[:, None] * w, low, high)


@keras.saving.register_keras_serializable(package="keras_adv")
class FAB(Attack):
    """Targeted Fast Adaptive Boundary attack, FAB-T (Croce & Hein 2020,
    "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
    Attack"; the targeted version of "Reliable evaluation of adversarial
    robustness with an ensemble of diverse parameter-free attacks").
    Norms: L∞ (default) and L2.

    A minimal-perturbation attack. For a target class t it linearises the
    decision boundary `z_t − z_y = 0` at the current iterate, projects both
    the iterate and the original input onto that hyperplane (within
    `bounds`, minimal in the attack's norm), and moves to a convex
    combination biased towards the original input (`alpha_max`), overshooting
    by `eta`. Each time the iterate is misclassified it is recorded if closer
    than the best so far and pulled back towards the input by `beta`.

    With `targeted=False` (the AutoAttack setting) `y` are the true labels and
    the targets are the `n_target_classes` classes ranked highest after the
    predicted one on the clean input, tried in turn; with `targeted=True`
    `y` are the targets. Per example the smallest successful perturbation is
    returned (the input unchanged when none was found). With `epsilon=None`
    the attack is unbounded; with an `epsilon` the base class caps the result.

    Example:

    ```python
    attack = keras_adv.attacks.FAB(epsilon=0.3, steps=100, n_target_classes=9)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: optional budget (None: minimal perturbation).
        steps: iterations per target class and restart.
        n_target_classes: runner-up classes targeted in turn (untargeted use).
        restarts: runs per target; runs after the first start from a random
            point at half the best distance found (or ε).
        alpha_max: largest weight of the original input in each step (0.1).
        eta: overshoot of the projection step (1.05).
        beta: backward step towards the input after a success (0.9).
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `bounds`, `targeted`, `seed`, `name` (see `keras_adv.attacks.Attack`).
    """

    allows_unbounded = True
    minimal_perturbation = True
    supported_norms = ("linf", "l2")
    # Restarts after the first start near the best point found so far: FAB chains them itself.
    independent_restarts = False

    # Set by AutoAttack on its members: accept single-unit (binary) and 2-3 class models.
    _few_classes_ok = False

    def __init__(
        self,
        epsilon: Optional[float] = None,
        *,
        steps: int = 100,
        n_target_classes: int = 9,
        restarts: int = 1,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        norm="linf",
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, norm=norm, **kwargs)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.n_target_classes = check_number("n_target_classes", n_target_classes, minimum=1, integer=True)
        self.restarts = check_number("restarts", restarts, minimum=1, integer=True)
        self.alpha_max = check_number("alpha_max", alpha_max, minimum=0.0)
        self.eta = check_number("eta", eta, minimum=1.0)
        self.beta = check_number("beta", beta, minimum=0.0)
        if self.beta > 1.0 or self.alpha_max > 1.0:
            raise ValueError(f"`beta` and `alpha_max` must lie in [0, 1], got {beta!r}, {alpha_max!r}.")

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        name = type(self).__name__
        labels = _scores.label_indices(y)
        batch = tf.shape(x)[0]
        scores = _scores.class_scores(model(x, training=False), name, self._few_classes_ok, model)
        pred = tf.argmax(scores, axis=-1, output_type=tf.int32)
        inf = tf.constant(float("inf"), x.dtype)
        if self.targeted:
            true = pred  # move away from the current prediction towards y
            n_targets = 1
        else:
            true = labels
            n_targets = self.n_target_classes
            if scores.shape[-1] is not None:
                n_targets = min(n_targets, scores.shape[-1] - 1)
        ranked = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
        done0 = tf.equal(pred, labels) if self.targeted else tf.not_equal(pred, labels)
        best_norm = tf.where(done0, tf.zeros([batch], x.dtype), tf.fill([batch], inf))
        seeds = tf.random.experimental.stateless_split(seed, n_targets * self.restarts)

        def target_body(j, best, best_norm):
            if self.targeted:
                target = labels
            else:
                target = ranked[:, j + 1]
                target = tf.where(tf.equal(target, labels), ranked[:, 0], target)
            for r in range(self.restarts):
                best, best_norm = self._single_run(
                    model, x, true, target, labels, epsilon, seeds[j * self.restarts + r],
                    r > 0, best, best_norm,
                )
            return j + 1, best, best_norm

        _, best, _ = tf.while_loop(
            lambda j, *_: j < n_targets, target_body, (tf.constant(0), x, best_norm)
        )
        return best

    def _single_run(self, model, x0, true, target, labels, epsilon, seed, random_start, best, best_norm):
        name = type(self).__name__
        dtype = x0.dtype
        shape = tf.shape(x0)
        batch = shape[0]
        flat0 = _flat(x0)
        # Bounds as rows of the flat examples: per-feature (e.g. per-channel) bounds broadcast to one example first.
        lo, hi = (tf.reshape(tf.broadcast_to(tf.cast(b, dtype), shape[1:]), [1, -1]) for b in self.bounds)
        project = _project_linf if self.norm.name == "linf" else _project_l2

        def success(outputs):
            scores_now = _scores.class_scores(outputs, name, self._few_classes_ok, model)
            pred = tf.argmax(scores_now, axis=-1, output_type=tf.int32)
            return tf.equal(pred, labels) if self.targeted else tf.not_equal(pred, labels)

        def diff(xc):
            scores = _scores.class_scores(model(xc, training=False), name, self._few_classes_ok, model)
            if self.targeted:
                # Boundary against the strongest competitor of the target at the iterate.
                z_t, z_other = _scores.true_and_other(scores, target)
                return z_t - z_other
            n = tf.shape(scores)[-1]
            return tf.reduce_sum((tf.one_hot(target, n) - tf.one_hot(true, n)) * scores, axis=-1)

        if random_start:
            radius = best_norm if epsilon is None else tf.minimum(best_norm, epsilon)
            radius = tf.where(tf.math.is_finite(radius), radius, tf.zeros_like(radius))
            if self.norm.name == "linf":
                t = tf.random.stateless_uniform(shape, seed, -1.0, 1.0, dtype=dtype)
            else:
                t = tf.random.stateless_normal(shape, seed, dtype=dtype)
            t = t / tf.maximum(_scores.batch_mask(self.norm.norm(t), x0), 1e-12)
            x1 = self.clip(x0 + 0.5 * _scores.batch_mask(radius, x0) * t)
        else:
            x1 = x0

        def body(i, x1, best, best_norm):
            f, g = value_and_gradient(diff, x1, name=name)
            w = _flat(g)
            flat1 = _flat(x1)
            r1 = -f
            r2 = -f - tf.reduce_sum(w * (flat0 - flat1), axis=1)
            d = project(tf.concat([flat1, flat0], 0), tf.concat([w, w], 0), tf.concat([r1, r2], 0), lo, hi)
            d1, d2 = d[:batch], d[batch:]
            a = tf.maximum(self.norm.norm(d), 1e-8)
            a1, a2 = a[:batch], a[batch:]
            alpha = tf.clip_by_value(a1 / (a1 + a2), 0.0, self.alpha_max)[:, None]
            nxt = (flat1 + self.eta * d1) * (1.0 - alpha) + (flat0 + self.eta * d2) * alpha
            x1 = self.clip(tf.reshape(nxt, shape))
            ok = success(model(x1, training=False))
            dist = self.norm.norm(x1 - x0)
            closer = ok & (dist < best_norm)
            best = tf.where(_scores.batch_mask(closer, x0), x1, best)
            best_norm = tf.where(closer, dist, best_norm)
            x1 = tf.where(_scores.batch_mask(ok, x0), x0 + (x1 - x0) * self.beta, x1)
            return i + 1, x1, best, best_norm

        _, _, best, best_norm = tf.while_loop(
            lambda i, *_: i < self.steps, body, (tf.constant(0), x1, best, best_norm)
        )
        return best, best_norm

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            n_target_classes=self.n_target_classes,
            restarts=self.restarts,
            alpha_max=self.alpha_max,
            eta=self.eta,
            beta=self.beta,
        )
        return config
