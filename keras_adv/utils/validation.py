"""Argument validation shared by every keras_adv module (public-internal).

Each check raises a `TypeError`/`ValueError` that names the argument and what
was expected, before anything is computed or changed. Use these instead of
writing a new check:

```python
from keras_adv.utils.validation import check_number
self.steps = check_number("steps", steps, minimum=1, integer=True)
```
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import numpy as np

__all__ = ["check_number", "check_bounds", "check_bool", "check_choice", "is_number"]


def is_number(value) -> bool:
    """True for a real Python or numpy scalar (bools excluded)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (numbers.Real, np.integer, np.floating))


def check_number(name: str, value, *, minimum=None, maximum=None, strict: bool = False,
                 allow_none: bool = False, integer: bool = False):
    """Validates a scalar hyper-parameter and returns it as `float` (or `int`).

    Args:
        name: the argument's name, used in the error.
        value: the value to check (a Python or numpy scalar).
        minimum: the smallest allowed value (`None`: no lower limit).
        maximum: the largest allowed value (`None`: no upper limit).
        strict: when True, `value` must be strictly greater than `minimum`.
        allow_none: accept `None` (returned as is).
        integer: the value must be integral; it is returned as `int`.

    Raises:
        TypeError: `value` is not a number.
        ValueError: `value` is None (unless allowed), not finite, not an
            integer when one is required, or outside the limits.
    """
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"`{name}` is required, got None.")
    if not is_number(value):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}: {value!r}.")
    if integer and not float(value).is_integer():
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    if minimum is not None:
        bad = value <= minimum if strict else value < minimum
        if bad:
            op = ">" if strict else ">="
            raise ValueError(f"`{name}` must be {op} {minimum}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value!r}.")
    return int(value) if integer else float(value)


def check_bounds(bounds, name: str = "bounds") -> Tuple[float, float]:
    """Validates a scalar `(min, max)` pair with `min < max`; returns it as floats."""
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max), got {bounds!r}.") from None
    lo = check_number(f"{name}[0]", lo)
    hi = check_number(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy min < max, got {bounds!r} (reversed or empty).")
    return lo, hi


def check_bool(name: str, value) -> bool:
    """Validates a boolean flag (Python or numpy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")
    return bool(value)


def check_choice(name: str, value, choices, *, lower: bool = False):
    """Validates that `value` is one of `choices` (case-insensitive strings when `lower`)."""
    key = value.lower() if (lower and isinstance(value, str)) else value
    if key not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
    return key



def check_model(model, name: str = "model") -> None:
    """A model the attacks can call as `model(x, training=False)`: a Keras model or layer, or a callable taking
    `training`; a `TypeError` naming `name` otherwise (instead of "'NoneType' object is not callable" or
    "unexpected keyword argument 'training'" from deep inside an attack)."""
    import inspect

    import keras

    if isinstance(model, keras.layers.Layer):  # Keras models are layers
        return
    if model is None or not callable(model):
        raise TypeError(f"`{name}` must be a keras.Model, got {type(model).__name__}.")
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: let the call say
        return
    if not any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params):
        raise TypeError(
            f"`{name}` is a plain callable ({getattr(model, '__name__', type(model).__name__)}) without a "
            "`training` argument: attacks call model(x, training=False). Pass a keras.Model (e.g. wrap the "
            "function in a keras.layers.Lambda inside one) or accept `training=False`.")
