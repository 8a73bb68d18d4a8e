"""Evolutionary (MOEVA-style) gradient-free attack on tabular records in a `FeatureSpace`."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.attacks import _scores
from keras_adv.utils.validation import check_number
from keras_adv.attacks.constrained import ConstrainedAttack

__all__ = ["Evolutionary"]

_INFEASIBLE = 1e6


@keras.saving.register_keras_serializable(package="keras_adv")
class Evolutionary(ConstrainedAttack):
    """Evolutionary search over a feature space (after MOEVA: Simonetto et al.
    2022, "A Unified Framework for Adversarial Attack and Defense in
    Constrained Feature Space", IJCAI). Gradient-free: it only queries the
    model's class scores, so it works on models with no usable gradient
    (rounding, lookups, trees behind a Keras wrapper). Norms: L∞ and L2 on
    scaled features.

    Each clean record grows its own population (all populations evolve
    together, vectorised as one `(batch · population, features)` model call
    per generation). A generation: binary-tournament selection of parents,
    uniform crossover, Gaussian mutation of the movable features (and random
    re-draws of mutable one-hot groups), projection onto the ε-ball and
    repair into the space (monotone features held on their allowed side of
    the clean record; the initial population is drawn there), then elitist survival of the best `population`
    among parents and offspring.

    The three objectives of MOEVA — misclassification (the margin of the true
    class over the best other), distance (scaled norm of the change) and
    constraint violation — are ordered by Deb's feasibility rule (any valid
    record beats any invalid one, invalid ones by total violation), then
    misclassification, then, among successful records, the smaller distance.

    Example:

    ```python
    attack = keras_adv.attacks.Evolutionary(epsilon=0.1, domain=space, generations=50)
    x_adv = attack(model, x, y)   # works where CAPGD reports "no gradient"
    ```

    Args:
        epsilon: budget ε on scaled features.
        domain: the `keras_adv.domains.FeatureSpace`.
        generations: number of generations.
        population: individuals per clean record.
        mutation_rate: probability that a movable feature of an offspring mutates.
        mutation_scale: standard deviation of a mutation, as a fraction of ε.
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `targeted`, `seed`, `check_inputs`, `name`.
    """

    gradient_free = True

    def __init__(
        self,
        epsilon: float,
        *,
        domain,
        generations: int = 50,
        population: int = 24,
        mutation_rate: float = 0.3,
        mutation_scale: float = 0.5,
        norm="linf",
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, domain=domain, norm=norm, **kwargs)
        self.generations = check_number("generations", generations, minimum=1, integer=True)
        self.population = check_number("population", population, minimum=2, integer=True)
        self.mutation_rate = check_number("mutation_rate", mutation_rate, minimum=0.0)
        if self.mutation_rate > 1:
            raise ValueError(f"`mutation_rate` must be in [0, 1], got {mutation_rate!r}.")
        self.mutation_scale = check_number("mutation_scale", mutation_scale, minimum=0.0, strict=True)

    @_no_autograph
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        space, norm = self.domain, self.norm
        dtype = x.dtype
        n = space.n_features
        P = self.population
        batch = tf.shape(x)[0]
        labels = tf.repeat(_scores.label_indices(y), P)
        x_rep = tf.repeat(x, P, axis=0)  # (batch·P, n): individual p of record b at b·P + p
        eps = tf.cast(epsilon, dtype)
        scale = tf.constant(space.scale, dtype)
        movable = tf.constant(space.step_mask & ~space.is_categorical, dtype)
        groups = [g for g in space.categorical if space.mutable[g[0]]]

        def fitness(pop):
            """Lower is better: feasibility first, then margin, then distance among successes."""
            # a single sigmoid unit (binary classifier) counts as two classes, as in CAPGD's loss
            scores = _scores.class_scores(model(pop, training=False), type(self).__name__,
                                          allow_single_unit=True, model=model)
            margin = _scores.margin(scores, labels)
            if self.targeted:
                margin = -margin
            valid = space.is_valid(pop, x_rep, eps, norm)
            success = margin < 0
            dist = space.distance(pop, x_rep, norm) / tf.maximum(eps, 1e-12)
            key = tf.where(success, -1.0 + 0.5 * tf.minimum(dist, 1.0), tf.cast(margin, dtype))
            infeasible = _INFEASIBLE + space.penalty(pop)
            return tf.where(valid, key, infeasible)

        s_init, s_loop = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        delta = space.orient(norm.random_start(tf.shape(x_rep), eps, s_init, dtype) * scale * movable)
        first = tf.reshape(tf.one_hot(tf.zeros([batch], tf.int32) , P, dtype=dtype), [-1, 1])
        pop = space.budget_project(x_rep, x_rep + delta * (1.0 - first), eps, norm)  # individual 0: the clean record
        fit = fitness(pop)

        def body(g, pop, fit, key):
            key, k1, k2, k3, k4, k5, k6 = tf.unstack(tf.random.experimental.stateless_split(key, 7))
            # binary tournament: two candidates per parent slot, the fitter wins
            def tournament(k):
                cand = tf.random.stateless_uniform([batch, P, 2], k, 0, P, dtype=tf.int32)
                f = tf.gather(tf.reshape(fit, [batch, P]), cand, batch_dims=1)
                return tf.where(f[..., 0] <= f[..., 1], cand[..., 0], cand[..., 1])

            pop3 = tf.reshape(pop, [batch, P, n])
            pa = tf.gather(pop3, tournament(k1), batch_dims=1)
            pb = tf.gather(pop3, tournament(k2), batch_dims=1)
            cross = tf.random.stateless_uniform([batch, P, n], k3, dtype=dtype) < 0.5
            child = tf.reshape(tf.where(cross, pa, pb), [-1, n])
            hit = tf.cast(tf.random.stateless_uniform(tf.shape(child), k4, dtype=dtype) < self.mutation_rate, dtype)
            noise = tf.random.stateless_normal(tf.shape(child), k5, dtype=dtype) * self.mutation_scale * eps
            child = child + hit * noise * scale * movable
            if groups:
                redraw = tf.random.stateless_uniform(tf.shape(child), k6, dtype=dtype)
                flip = tf.cast(redraw[:, :1] < self.mutation_rate / 2, dtype)
                cat = np.zeros(n, np.float32)
                for grp in groups:
                    cat[grp] = 1.0
                cat = tf.constant(cat, dtype)
                child = child * (1.0 - flip * cat) + flip * cat * redraw  # argmax of a random draw
            child = space.budget_project(x_rep, child, eps, norm)
            child_fit = fitness(child)
            # elitist survival among parents and children
            both = tf.concat([tf.reshape(pop, [batch, P, n]), tf.reshape(child, [batch, P, n])], axis=1)
            both_fit = tf.concat([tf.reshape(fit, [batch, P]), tf.reshape(child_fit, [batch, P])], axis=1)
            keep = tf.math.top_k(-both_fit, k=P).indices
            pop = tf.reshape(tf.gather(both, keep, batch_dims=1), [-1, n])
            fit = tf.reshape(tf.gather(both_fit, keep, batch_dims=1), [-1])
            return g + 1, pop, fit, key

        _, pop, fit, _ = tf.while_loop(
            lambda g, *_: g < self.generations, body, (tf.constant(0), pop, fit, s_loop)
        )
        best = tf.argmin(tf.reshape(fit, [batch, P]), axis=1, output_type=tf.int32)
        return tf.gather(tf.reshape(pop, [batch, P, n]), best, batch_dims=1)

    def get_config(self):
        config = super().get_config()
        config.pop("loss")
        config.update(
            generations=self.generations,
            population=self.population,
            mutation_rate=self.mutation_rate,
            mutation_scale=self.mutation_scale,
        )
        return config
