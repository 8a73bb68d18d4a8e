"""Checks of configs read from files that may come from someone else (see docs/trust_model.md).

A saved `AdversarialModel` holds three kinds of config: the base model (plain
Keras: Keras' own `safe_mode` refuses lambdas there), the attacks, and the
objective's name. For the keras_adv parts:

* an attack config must name a class of keras_adv's own registry
  (`"keras_adv>PGD"`, ...). Anything else (an unknown or unregistered class,
  another package's object, a Keras `Lambda`) is refused with an error that
  says which field and why, *before* anything is deserialized;
* loop sizes (`steps`, `restarts`, `queries`, ...) above fixed caps are refused,
  so a file cannot make `evaluate` run for days;
* the objective and the norm are names looked up in keras_adv's registries
  only (`keras_adv.models.objectives`, `keras_adv.norms`); a serialized
  objective must name a registered `Objective` subclass
  (`keras_adv.models.objectives.check_serialized`).

This module sits below the attacks and models that call it, so the class a
config must be a subclass of is passed in (`attack_class=Attack`).
"""

from __future__ import annotations

import math
from typing import Any, Dict

__all__ = ["LIMITS", "UntrustedConfigError", "check_attack_config", "check_serialized_attack"]

#: The largest value a config read from a file may give each loop size.
#: Far above any published setting (AutoAttack: 100 steps, 5 restarts, 5,000 queries).
LIMITS: Dict[str, int] = {
    "steps": 100_000,
    "restarts": 1_000,
    "queries": 1_000_000,
    "binary_search_steps": 1_000,
    "n_target_classes": 10_000,
    "n_rotations": 10_000,
    "n_translations": 10_000,
    "n_scales": 10_000,
    "k": 10_000,
    "grid_batch_size": 1_000_000,
    "max_substitutions": 100_000,
    "population_size": 100_000,
    "generations": 100_000,
}
#: The largest product of `steps × restarts` (the gradient passes of one call).
MAX_WORK = 1_000_000


class UntrustedConfigError(ValueError):
    """A config read from a file was refused (unknown class, absurd value)."""


def _own_attack_classes(attack_class):
    """keras_adv's registered attacks (`"keras_adv>PGD"`, ...) by class name."""
    import keras

    return {name.partition(">")[2]: obj for name, obj in keras.saving.get_custom_objects().items()
            if name.startswith("keras_adv>") and isinstance(obj, type) and issubclass(obj, attack_class)}


def check_attack_config(config: Any, field: str = "attack", *, attack_class: type) -> Any:
    """Checks the loop sizes of an attack's constructor config (a dict of arguments).

    `attack_class` is `keras_adv.attacks.Attack` (passed in: this module sits
    below the attacks), the class a nested attack must be a registered subclass of.

    Raises:
        UntrustedConfigError: a loop size is not a finite number or exceeds `LIMITS`.
    """
    if not isinstance(config, dict):
        return config
    work = 1.0
    for key, value in config.items():
        if key in LIMITS and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UntrustedConfigError(f"`{field}.{key}` must be a finite number, got {value!r}.")
            if value > LIMITS[key]:
                raise UntrustedConfigError(
                    f"`{field}.{key}`={value!r} exceeds the limit {LIMITS[key]:,} for a config read from a "
                    "file (keras_adv.utils.trust.LIMITS). If you trust this file, build the attack in code."
                )
            if key in ("steps", "restarts"):
                work *= max(float(value), 1.0)
    if work > MAX_WORK:
        raise UntrustedConfigError(
            f"`{field}`: steps × restarts = {work:,.0f} exceeds the limit {MAX_WORK:,} for a config read from a file."
        )
    for key in ("loss", "ce_loss"):
        if config.get(key) is not None:
            check_serialized_loss(config[key], f"{field}.{key}")
    for key in ("attacks", "inner", "base_attack"):  # nested attacks
        nested = config.get(key)
        if isinstance(nested, dict) and "class_name" in nested:
            check_serialized_attack(nested, f"{field}.{key}", attack_class=attack_class)
    return config


def check_serialized_loss(serialized: Any, field: str) -> None:
    """A loss in a config must be a name, a Keras loss or a registered (keras_adv or user) object."""
    if isinstance(serialized, str):
        return
    if not isinstance(serialized, dict):
        raise UntrustedConfigError(f"`{field}` must be a serialized loss, got {type(serialized).__name__}.")
    import keras

    module = str(serialized.get("module") or "")
    registered = serialized.get("registered_name")
    if module == "keras" or module.startswith(("keras.", "keras_adv")):
        return
    if module == "builtins" and serialized.get("class_name") == "function" and isinstance(
            serialized.get("config"), str) and callable(getattr(keras.losses, serialized["config"], None)):
        return  # how Keras serializes its own loss functions (looked up by name in keras.losses)
    if registered and keras.saving.get_registered_object(registered) is not None:
        return
    if module == "builtins" and serialized.get("class_name") == "function" and isinstance(
            serialized.get("config"), str) and keras.saving.get_registered_object(serialized["config"]) is not None:
        return  # a registered function (e.g. "keras_adv>margin"): looked up in the registry, never imported
    name = f"{module}.{serialized.get('config') if serialized.get('class_name') == 'function' else serialized.get('class_name')}"
    raise UntrustedConfigError(
        f"`{field}` names {name!r}, which is neither a Keras nor a keras_adv loss nor a registered object; "
        "it is not imported from a file. Register it (@keras.saving.register_keras_serializable) or pass it "
        "in `custom_objects` if you trust it."
    )


def deserialize(field: str, serialized: Any, custom_objects=None):
    """`keras.saving.deserialize_keras_object`, with the root cause of a failure named (not Keras' generic
    "could not be deserialized properly", which hides it in the chained exception)."""
    import keras

    try:
        return keras.saving.deserialize_keras_object(serialized, custom_objects=custom_objects)
    except TypeError as e:
        cause = e
        while (cause.__cause__ or cause.__context__) is not None:
            cause = cause.__cause__ or cause.__context__
        message = str(cause).split("Full object config")[0].strip()
        raise UntrustedConfigError(f"`{field}` could not be loaded: {message}") from e


def _registered_attack(name, custom_objects, attack_class):
    """The class registered under `name` (keras_adv's or the user's own registration), if it is an attack."""
    import keras

    try:
        obj = keras.saving.get_registered_object(name, custom_objects=custom_objects)
    except Exception:  # noqa: BLE001 - a lookup failure is "not registered"
        obj = None
    return obj if isinstance(obj, type) and issubclass(obj, attack_class) else None


def check_serialized_attack(serialized: Any, field: str = "attack", custom_objects=None, *, attack_class: type) -> None:
    """Checks a serialized attack (`{"class_name", "config", "registered_name", ...}`) before deserializing it.

    It must name a registered subclass of `attack_class` (`keras_adv.attacks.Attack`).
    """
    if serialized is None:
        return
    if not isinstance(serialized, dict) or "class_name" not in serialized:
        raise UntrustedConfigError(
            f"`{field}` must be a serialized keras_adv attack (a dict with 'class_name' and 'config'), "
            f"got {type(serialized).__name__}."
        )
    known = _own_attack_classes(attack_class)
    registered = serialized.get("registered_name") or serialized.get("class_name")
    package, _, cls_name = str(registered).rpartition(">")
    own = package in ("keras_adv", "") and cls_name in known
    if not own and _registered_attack(str(registered), custom_objects, attack_class) is None:
        raise UntrustedConfigError(
            f"`{field}` names the class {registered!r}, which is not one of keras_adv's attacks "
            f"({', '.join(sorted(known))}). Only keras_adv's own attack registry is used when loading; "
            "a custom attack is loaded only when its class is registered "
            "(@keras.saving.register_keras_serializable) or passed in `custom_objects` by the user."
        )
    check_attack_config(serialized.get("config"), field, attack_class=attack_class)
