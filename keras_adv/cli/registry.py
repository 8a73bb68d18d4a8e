"""Names the command line accepts, looked up in the library's own registries.

Attacks come from `keras_adv.attacks` (every exported `Attack` subclass under
its lower-case class name), objectives from `keras_adv.models.objectives`,
presets from `keras_adv.models.presets` and datasets from
`keras_adv.datasets`: a new entry there appears in the CLI with no change here.
"""

from __future__ import annotations

import inspect
import json
from typing import Dict, List, Optional

from keras_adv.cli._startup import library

__all__ = ["CLIError", "attack_registry", "make_attack", "lookup_attack", "attack_label", "objective_names",
           "check_dataset", "check_preset", "check_objective", "is_constrained"]


class CLIError(ValueError):
    """A user error (bad argument or data): printed as `keras-adv COMMAND: error: ...`, exit status 2."""


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_BASE_CLASSES = ("Attack", "GradientAttack")
# Short names people type, used only when the attack they point to is exported.
_ALIASES = {"cw": "carliniwagnerl2", "cwl2": "carliniwagnerl2", "spatial": "spatialtransformation"}


def attack_registry() -> Dict[str, type]:
    """Maps lower-case names to every concrete attack class `keras_adv.attacks` exports.

    New attacks appear automatically: any exported subclass of
    `keras_adv.attacks.Attack` other than the base classes is listed under
    its lower-case class name (`PGD` -> `pgd`, `CarliniWagnerL2` -> `carliniwagnerl2`).
    """
    attacks = library().attacks
    names = getattr(attacks, "__all__", None) or [n for n in dir(attacks) if not n.startswith("_")]
    registry = {}
    for name in names:
        obj = getattr(attacks, name, None)
        if (isinstance(obj, type) and issubclass(obj, attacks.Attack) and name not in _BASE_CLASSES
                and not name.startswith("_") and not inspect.isabstract(obj)
                and not getattr(obj, "discrete_inputs", False)  # token-id attacks need a text model
                and _buildable_from_a_budget(obj, attacks.Attack)):
            registry[name.lower()] = obj
    return dict(sorted(registry.items()))


def _buildable_from_a_budget(cls, base) -> bool:
    """Whether the command line can build `cls` from `--eps` (and, for tables, the dataset's domain).

    Leaves out base classes that compute nothing themselves (no `perturb` of
    their own, e.g. `ConstrainedAttack`) and wrappers that need another
    attack object (`BPDA(attack, ...)`, `EOT(attack, ...)`): Python only.
    """
    computes = any(getattr(cls, m) is not getattr(base, m) for m in ("perturb", "perturb_with_restarts"))
    params = inspect.signature(cls.__init__).parameters.values()
    needs = [p.name for p in params
             if p.default is inspect.Parameter.empty and p.name not in ("self", "epsilon", "domain")
             and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    return computes and not needs


def lookup_attack(name: str) -> type:
    """The attack class called `name` (case, `_` and `-` ignored; aliases `cw`, `spatial`)."""
    registry = attack_registry()
    by_key = {_key(k): v for k, v in registry.items()}
    for alias, target in _ALIASES.items():
        if target in by_key:
            by_key.setdefault(alias, by_key[target])
    if _key(name) not in by_key:
        raise CLIError(f"unknown attack {name!r}. Available attacks: {', '.join(registry)}.")
    return by_key[_key(name)]


def make_attack(name: str, epsilon: float, *, steps: Optional[int] = None, restarts: Optional[int] = None,
                seed: Optional[int] = None, options: Optional[dict] = None):
    """Builds the attack called `name` with budget `epsilon`.

    `steps`, `restarts` and `seed` are passed only to attacks whose
    constructor accepts them; `options` (from `--attack-option key=value`)
    are passed as they are.
    """
    cls = lookup_attack(name)
    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    if steps is not None and "steps" in params:
        kwargs["steps"] = steps
    if restarts is not None and "restarts" in params:
        kwargs["restarts"] = restarts
    if seed is not None and ("seed" in params or takes_kwargs):
        kwargs["seed"] = seed
    kwargs.update(options or {})
    try:
        return cls(epsilon=epsilon, **kwargs)
    except (TypeError, ValueError) as e:
        raise CLIError(f"cannot build attack {name!r} with epsilon={epsilon}, {kwargs}: {e}") from e


def is_constrained(name: str) -> bool:
    """Whether the attack called `name` keeps records in a tabular FeatureSpace (`domain=`)."""
    return issubclass(lookup_attack(name), library().attacks.ConstrainedAttack)


def attack_label(attack, options: Optional[dict] = None) -> str:
    """A short human name: `PGD-50 x3 restarts, eps=0.2 (linf)`, then the `--attack-option`s given, as typed."""
    name = type(attack).__name__
    steps, restarts = getattr(attack, "steps", None), getattr(attack, "restarts", None)
    if steps and steps > 1:
        name += f"-{steps}"
    if restarts and restarts > 1:
        name += f" x{restarts} restarts"
    norm = getattr(getattr(attack, "norm", None), "name", None)
    extra = "".join(f", {key}={_option_text(value)}" for key, value in (options or {}).items())
    return f"{name}, eps={attack.epsilon:g}" + (f" ({norm})" if norm else "") + extra


def _option_text(value) -> str:
    """An option as typed (JSON); an object the command built itself (a table's FeatureSpace) by its class."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__


def objective_names() -> List[str]:
    """The `--objective` choices: the objectives registry (`ce`, `madry`, `trades`, `mart`, ...)."""
    return list(library().models.objectives.available())


def check_dataset(name: str):
    """The dataset's `DatasetInfo`; a `CLIError` listing the valid names otherwise."""
    from keras_adv import datasets

    try:
        return datasets.info(name)
    except ValueError:
        raise CLIError(f"unknown dataset {name!r}. Available datasets: {', '.join(datasets.available())}.")


def check_preset(name: str):
    presets = library().models.presets
    if name.lower() == "text_classifier":
        raise CLIError("text_classifier is a text model, built for a vocabulary: the command line trains the image "
                       "and tabular datasets of `keras-adv list`. Train it in Python (docs/text.md).")
    if name.lower() not in presets.available():
        raise CLIError(f"unknown model preset {name!r}. Available presets: {', '.join(presets.available())}.")


def check_objective(name: str):
    if name.lower() not in objective_names():
        raise CLIError(f"unknown objective {name!r}. Available objectives: {', '.join(objective_names())}.")
