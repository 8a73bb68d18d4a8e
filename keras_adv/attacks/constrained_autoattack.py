"""ConstrainedAutoAttack: CAPGD, then the evolutionary attack on the points still robust."""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import keras
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import NoInputGradientError
from keras_adv.utils.validation import check_number
from keras_adv.attacks.autoattack import cascade
from keras_adv.attacks.capgd import CAPGD
from keras_adv.attacks.constrained import ConstrainedAttack
from keras_adv.attacks.evolutionary import Evolutionary

__all__ = ["ConstrainedAutoAttack"]

_MEMBERS = ("capgd", "evolutionary")


@keras.saving.register_keras_serializable(package="keras_adv")
class ConstrainedAutoAttack(ConstrainedAttack):
    """Constrained Adaptive Attack ensemble, CAA (Simonetto, Ghamizi & Cordy
    2024): the tabular counterpart of AutoAttack. Norms: L∞ and L2 on scaled
    features.

    Runs CAPGD on every correctly classified record, then the gradient-free
    `Evolutionary` search on the records CAPGD could not break (the
    `keras_adv.attacks.autoattack.cascade` rule: a record is broken as soon as
    one member succeeds, and that member's valid record is kept). Every
    result lies in the `domain`. Use it as the judge of tabular robustness,
    e.g. in `keras_adv.evaluate_robustness(..., attacks={"caa": attack})`.

    On a model with no gradient with respect to its input (rounding, lookups),
    the gradient-based members cannot run: the ensemble then runs its
    gradient-free members only, with a `UserWarning` (without any, it raises
    `NoInputGradientError`).

    Example:

    ```python
    attack = keras_adv.attacks.ConstrainedAutoAttack(epsilon=0.1, domain=space)
    x_adv = attack(model, x, y)
    ```

    Args:
        epsilon: budget ε on scaled features.
        domain: the `keras_adv.domains.FeatureSpace`.
        attacks: members in order, names among `"capgd"`, `"evolutionary"`
            or `ConstrainedAttack` instances (default both names).
        steps: CAPGD iterations.
        restarts: CAPGD runs.
        generations: evolutionary generations.
        population: evolutionary population per record.
        norm: `"linf"` (default) or `"l2"`.
        **kwargs: `seed`, `check_inputs`, `name`.
    """

    def __init__(
        self,
        epsilon: float,
        *,
        domain,
        attacks: Optional[Sequence] = None,
        steps: int = 100,
        restarts: int = 2,
        generations: int = 100,
        population: int = 32,
        norm="linf",
        **kwargs,
    ):
        if kwargs.get("targeted"):
            raise ValueError("ConstrainedAutoAttack is untargeted: `y` must be the true labels.")
        kwargs.pop("targeted", None)
        super().__init__(epsilon=epsilon, domain=domain, norm=norm, **kwargs)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.restarts = check_number("restarts", restarts, minimum=1, integer=True)
        self.generations = check_number("generations", generations, minimum=1, integer=True)
        self.population = check_number("population", population, minimum=2, integer=True)
        if attacks is None:
            attacks = list(_MEMBERS)
        if isinstance(attacks, (str, Attack)) or not len(attacks):
            raise ValueError(f"`attacks` must be a non-empty list of names {_MEMBERS} or "
                             f"ConstrainedAttack instances, got {attacks!r}.")
        self.attacks = [self._member(a) for a in attacks]

    def _member(self, spec):
        if isinstance(spec, dict):
            spec = keras.saving.deserialize_keras_object(spec)
        if isinstance(spec, Attack):
            if not isinstance(spec, ConstrainedAttack) or spec.targeted:
                raise ValueError(f"ConstrainedAutoAttack members must be untargeted ConstrainedAttacks, got {spec!r}.")
            return spec
        if not isinstance(spec, str) or spec.lower() not in _MEMBERS:
            raise ValueError(f"Unknown ConstrainedAutoAttack member {spec!r}; expected one of {_MEMBERS} "
                             "or a ConstrainedAttack.")
        common = dict(domain=self.domain, norm=self.norm.name, seed=self.seed, check_inputs=False)
        if spec.lower() == "capgd":
            return CAPGD(self.epsilon, steps=self.steps, restarts=self.restarts, name="capgd", **common)
        return Evolutionary(self.epsilon, generations=self.generations, population=self.population,
                            name="evolutionary", **common)

    @_no_autograph
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        try:
            return cascade(self.attacks, model, x, y, epsilon, seed, self.is_successful)
        except NoInputGradientError:
            # Raised while building the step (at trace time in a graph), before any result exists.
            free = [a for a in self.attacks if a.gradient_free]
            if not free:
                raise
        # A record counts as broken as soon as one member succeeds, so leaving out the members that
        # cannot run keeps every result valid and the robust accuracy an upper bound (a weaker one).
        skipped = [a.name for a in self.attacks if not a.gradient_free]
        warnings.warn(
            f"ConstrainedAutoAttack: the model has no gradient with respect to its input, so the "
            f"gradient-based member(s) {skipped} cannot run; attacking with the gradient-free "
            f"{[a.name for a in free]} only (a weaker ensemble: robust accuracy may be overstated).",
            UserWarning)
        return cascade(free, model, x, y, epsilon, seed, self.is_successful)

    def get_config(self):
        config = super().get_config()
        for key in ("targeted", "loss"):
            config.pop(key)
        config.update(
            attacks=[keras.saving.serialize_keras_object(a) for a in self.attacks],
            steps=self.steps,
            restarts=self.restarts,
            generations=self.generations,
            population=self.population,
        )
        return config
