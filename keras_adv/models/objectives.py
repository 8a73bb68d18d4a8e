"""Training objectives: how clean and adversarial losses combine.

An objective turns per-batch clean and adversarial outputs into the total loss
that `AdversarialModel` optimises, and the `clean_loss` / `adv_loss` it logs.
It may also replace the attack's inner loss (TRADES maximises a KL term).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Type

__all__ = ["Objective", "CrossEntropyMixture", "Madry", "get", "available"]


class Objective:
    """Base class. Subclasses implement `__call__`.

    Attributes:
        name: the `objective=` string.
        needs_clean_gradient: whether the clean forward pass contributes to
            the weight gradient (False lets the wrapper skip recording it).
    """

    name = ""
    needs_clean_gradient = True

    def attack_loss(self, y_clean) -> Optional[Callable]:
        """A per-example loss for the inner attack, or None for the compiled loss."""
        return None

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight):
        """Returns `(total, clean_loss, adv_loss)` scalars.

        `compiled_loss(y, y_pred, sample_weight)` is the model's compiled,
        batch-reduced loss.
        """
        raise NotImplementedError


class CrossEntropyMixture(Objective):
    """`L_clean + λ·L_adv` (Goodfellow et al. 2015), with the compiled loss."""

    name = "ce"

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return clean + adv_weight * adv, clean, adv


class Madry(Objective):
    """Pure adversarial training (Madry et al. 2018): only `λ·L_adv` is optimised.

    The clean loss is still computed and logged, but not differentiated.
    """

    name = "madry"
    needs_clean_gradient = False

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return adv_weight * adv, clean, adv


_REGISTRY: Dict[str, Type[Objective]] = {}


def register(cls: Type[Objective]) -> Type[Objective]:
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (CrossEntropyMixture, Madry):
    register(_cls)


def available():
    return sorted(_REGISTRY)


def get(objective) -> Objective:
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str) and objective.lower() in _REGISTRY:
        return _REGISTRY[objective.lower()]()
    raise ValueError(
        f"Unknown `objective`: {objective!r}. Expected one of {available()}."
    )
