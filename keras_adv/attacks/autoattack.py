"""AutoAttack: an ensemble of parameter-free attacks for reliable robustness evaluation."""

from __future__ import annotations

import time
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv.attacks import _scores
from keras_adv.attacks.apgd import APGD
from keras_adv.attacks._tracing import call_function
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.fab import FAB
from keras_adv.attacks.square import Square
from keras_adv.utils import trust
from keras_adv.utils.validation import check_number

__all__ = ["AutoAttack", "cascade"]

_MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr")


@keras.saving.register_keras_serializable(package="keras_adv")
class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial
    robustness with an ensemble of diverse parameter-free attacks").
    Norms: L∞ and L2.

    Runs its member attacks in sequence, each only on the points that every
    earlier member failed to misclassify (still classified correctly); a
    point counts as broken as soon as one member succeeds, and the
    adversarial example of that member is kept. The result always satisfies
    the budget and bounds (enforced by the base class after every member and
    again at the end).

    `version="standard"` runs APGD-CE (100 steps), APGD-T (targeted DLR, 9
    target classes, 100 steps), FAB-T (9 target classes, 100 steps) and
    Square (5000 queries), as in the paper. `attacks=[...]` picks a custom
    selection among `"apgd-ce"`, `"apgd-dlr"`, `"apgd-t"`, `"fab-t"`,
    `"square"`, or passes attack instances (their ε is overridden by the
    AutoAttack's).

    Example:

    ```python
    attack = keras_adv.attacks.AutoAttack(epsilon=8 / 255, norm="linf")
    x_adv = attack(model, x, y)
    quick = keras_adv.attacks.AutoAttack(epsilon=0.3, attacks=["apgd-ce", "apgd-t"])
    ```

    Args:
        epsilon: budget ε.
        norm: `"linf"` (default) or `"l2"`.
        version: `"standard"` (the only preset).
        attacks: optional custom selection (names or `Attack` instances).
        steps: iterations of the APGD and FAB members.
        queries: queries of the Square member.
        n_target_classes: target classes of APGD-T and FAB-T.
        **kwargs: `bounds`, `seed`, `name` (see `keras_adv.attacks.Attack`).
    """

    supported_norms = ("linf", "l2")

    def __init__(
        self,
        epsilon: float,
        *,
        norm="linf",
        version: str = "standard",
        attacks: Optional[Sequence] = None,
        steps: int = 100,
        queries: int = 5000,
        n_target_classes: int = 9,
        **kwargs,
    ):
        if kwargs.get("targeted"):
            raise ValueError("AutoAttack is untargeted: `y` must be the true labels (targeted=False).")
        super().__init__(epsilon=epsilon, norm=norm, **kwargs)
        if version != "standard":
            raise ValueError(f"`version` must be 'standard', got {version!r}.")
        self.version = version
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.queries = check_number("queries", queries, minimum=1, integer=True)
        self.n_target_classes = check_number("n_target_classes", n_target_classes, minimum=1, integer=True)
        if attacks is None:
            attacks = ["apgd-ce", "apgd-t", "fab-t", "square"]
        if isinstance(attacks, (str, Attack)) or not len(attacks):
            raise ValueError(f"`attacks` must be a non-empty list of names {_MEMBERS} or Attack instances, got {attacks!r}.")
        self.attacks = [self._member(a) for a in attacks]

    def _member(self, spec):
        if isinstance(spec, dict):
            spec = keras.saving.deserialize_keras_object(spec)
        if isinstance(spec, Attack):
            if spec.targeted:
                raise ValueError(f"AutoAttack members must be untargeted, got {spec!r}.")
            if hasattr(type(spec), "_few_classes_ok"):
                spec._few_classes_ok = True
            return spec
        if not isinstance(spec, str) or spec.lower() not in _MEMBERS:
            raise ValueError(f"Unknown AutoAttack member {spec!r}; expected one of {_MEMBERS} or an Attack.")
        member = self._build_member(spec.lower())
        member._few_classes_ok = True  # binary (single-unit) models: DLR falls back to the margin
        return member

    def _build_member(self, spec):
        common = dict(norm=self.norm, domain=self.domain, seed=self.seed, check_inputs=False)
        if spec == "apgd-ce":
            return APGD(self.epsilon, loss="ce", steps=self.steps, name="apgd-ce", **common)
        if spec in ("apgd-dlr", "apgd-t"):
            targets = dict(n_target_classes=self.n_target_classes) if spec == "apgd-t" else {}
            return APGD(self.epsilon, loss="dlr", steps=self.steps, name=spec, **targets, **common)
        if spec == "fab-t":
            return FAB(self.epsilon, steps=self.steps, n_target_classes=self.n_target_classes, name="fab-t", **common)
        return Square(self.epsilon, queries=self.queries, name="square", **common)

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        return cascade(self.attacks, model, x, y, epsilon, seed, self.is_successful)

    def batch_function(self, model, *, verbose: int = 0, strategy=None):
        """Runs the members one after the other from Python, each compiled on its own.

        Gives the very examples of the in-graph `perturb` (same member seeds,
        same still-robust subsets) while (1) tracing each member once instead
        of one large graph holding all of them, and (2) reporting progress:
        with `verbose`, one line per member with the number of points still
        robust and the time it took (Croce & Hein's "robust accuracy after
        each attack" log). `generate(verbose=1)` and
        `evaluate_robustness(verbose=1)` turn it on. With `strategy`, each
        member's call on the still-robust points is split across the
        replicas; the bookkeeping stays here, on the whole batch.
        """
        predict = call_function(model)
        member_fns = [m.batch_function(model, strategy=strategy) for m in self.attacks]
        from_logits = losses_lib.infer_from_logits(model)

        def call(xb, yb, epsilon, seed):
            with losses_lib.outputs_from_logits(from_logits):
                return run(xb, yb, epsilon, seed)

        def run(xb, yb, epsilon, seed):
            x = self._validate_x(xb)
            y = self._validate_y(yb, x)
            eps = float(self.epsilon if epsilon is None else epsilon)
            seeds = tf.random.experimental.stateless_split(seed, len(self.attacks))
            robust = ~self.is_successful(predict(x), y).numpy()
            x_adv = x.numpy().copy()
            n = len(robust)
            if verbose:
                print(f"AutoAttack ε={eps:g} on {n} points: {int(robust.sum())} correctly classified", flush=True)
            for member, fn, s in zip(self.attacks, member_fns, seeds):
                idx = np.flatnonzero(robust)
                t0 = time.perf_counter()
                if idx.size:
                    xs, ys = tf.gather(x, idx), tf.gather(y, idx)
                    cand = fn(xs, ys, eps, s)
                    ok = member.is_successful(predict(cand), ys).numpy()
                    x_adv[idx[ok]] = cand.numpy()[ok]
                    robust[idx[ok]] = False
                if verbose:
                    print(f"  after {member.name:<9} {int(robust.sum()):>6} / {n} robust "
                          f"({time.perf_counter() - t0:.1f} s)", flush=True)
            # The tail of `Attack._run`: budget and domain, non-finite fallback.
            x_adv = self.enforce_budget(x, tf.constant(x_adv), tf.constant(eps, x.dtype))
            finite = tf.reduce_all(tf.reshape(tf.math.is_finite(x_adv), [tf.shape(x_adv)[0], -1]), axis=1)
            return tf.stop_gradient(tf.where(_scores.batch_mask(finite, x_adv), x_adv, x))

        return call

    def get_config(self):
        config = super().get_config()
        for key in ("targeted", "loss"):
            config.pop(key)
        config.update(
            version=self.version,
            attacks=[keras.saving.serialize_keras_object(a) for a in self.attacks],
            steps=self.steps,
            queries=self.queries,
            n_target_classes=self.n_target_classes,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**trust.check_attack_config(config, cls.__name__, attack_class=Attack))


def cascade(attacks, model, x, y, epsilon, seed, is_successful):
    """Runs `attacks` in turn, each only on the points still classified correctly.

    A point counts as broken as soon as one attack succeeds on it, and that
    attack's adversarial example is kept (AutoAttack's and the constrained
    ensemble's rule). Returns the adversarial batch.
    """
    seeds = tf.random.experimental.stateless_split(seed, len(attacks))
    robust = ~is_successful(model(x, training=False), y)  # correctly classified points
    x_adv = x
    for i, member in enumerate(attacks):
        idx = tf.where(robust)[:, 0]

        def run(idx=idx, member=member, s=seeds[i]):
            xs = tf.gather(x, idx)
            ys = tf.gather(y, idx)
            cand = member(model, xs, ys, epsilon=epsilon, seed=s)
            ok = member.is_successful(model(cand, training=False), ys)
            return cand, ok

        def skip():
            return tf.zeros_like(tf.gather(x, idx)), tf.zeros_like(idx, dtype=tf.bool)

        cand, ok = tf.cond(tf.size(idx) > 0, run, skip)
        hit = tf.boolean_mask(idx, ok)[:, None]
        x_adv = tf.tensor_scatter_nd_update(x_adv, hit, tf.boolean_mask(cand, ok))
        robust = tf.tensor_scatter_nd_update(robust, hit, tf.zeros_like(hit[:, 0], dtype=tf.bool))
    return x_adv
