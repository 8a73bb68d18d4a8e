"""Checks of what the user typed and of the data, done before any training, attack or file write."""

from __future__ import annotations

import json
import os
from typing import List, Sequence, Tuple

from keras_adv.cli._startup import library
from keras_adv.cli.registry import CLIError

__all__ = ["parse_options", "parse_list", "parse_epsilons", "check_epsilon", "check_data", "load_model",
           "base_model", "table_domain", "BOUNDS"]

# The input range of every dataset `keras_adv.datasets.load` returns, and the attacks' default `bounds`.
BOUNDS: Tuple[float, float] = (0.0, 1.0)


def parse_options(pairs: Sequence[str]) -> dict:
    """`--attack-option KEY=VALUE` pairs as a dict (values parsed as JSON when they are JSON)."""
    options = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise CLIError(f"--attack-option expects KEY=VALUE, got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def parse_list(text: str, what: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise CLIError(f"{what} must be a comma-separated list, got {text!r}.")
    return items


def check_counts(**options) -> None:
    """Refuses any count below 1, by its option name (`eval_steps=0` -> "--eval-steps must be >= 1"); None is unset."""
    for key, value in options.items():
        if value is not None and value < 1:
            raise CLIError(f"--{key.replace('_', '-')} must be >= 1, got {value}.")


def check_epsilon(value: float, what: str = "--epsilon", bounds: Tuple[float, float] = BOUNDS,
                  table: bool = False) -> float:
    """ε must lie in [0, bounds width]: a larger L∞ budget reaches every input, so 'robust' means nothing.

    On a table ε is a share of each feature's range (its FeatureSpace scales), so the same [0, 1] holds.
    """
    width = bounds[1] - bounds[0]
    if not (0.0 <= value <= width):  # also refuses NaN
        unit = ("a share of each feature's range" if table else
                f"the width of the input range {list(bounds)}")
        raise CLIError(f"{what} must be in [0, {width:g}] ({unit}), "
                       f"got {value:g}; a budget of {width:g} or more lets the attacker reach any input.")
    return value


def parse_epsilons(text: str, table: bool = False) -> List[float]:
    values = []
    for item in parse_list(text, "--epsilons"):
        try:
            value = float(item)
        except ValueError:
            raise CLIError(f"--epsilons must be comma-separated numbers such as 0,0.1,0.2; got {item!r}.")
        values.append(check_epsilon(value, "--epsilons", table=table))
    return sorted(set(values))


def check_data(x, name: str, bounds: Tuple[float, float] = BOUNDS):
    """Refuses data outside the attack bounds once, before training or attacking starts.

    Raises `CLIError`, a plain `ValueError` (not a graph-execution error from inside `fit`).
    """
    import numpy as np

    x = np.asarray(x)
    if x.size == 0:
        raise CLIError(f"{name}: no examples.")
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise CLIError(f"{name} holds NaN or infinite values.")
    if lo < bounds[0] or hi > bounds[1]:
        raise CLIError(f"{name} has values in [{lo:g}, {hi:g}], outside the attack bounds {list(bounds)}; "
                         f"scale the inputs to {list(bounds)} (e.g. divide 8-bit pixels by 255).")


def table_domain(meta, splits):
    """The FeatureSpace of the table `meta`, every `(split name, records)` checked against it (a `CLIError`)."""
    domain = library().datasets.feature_space(meta.name)
    for split_name, records in splits:
        try:
            domain.check(records, argument=f"the {meta.name} {split_name} split")
        except ValueError as e:
            raise CLIError(str(e)) from None
    return domain


def load_model(path: str):
    """The `.keras` model at `path` (an `AdversarialModel` or any Keras model)."""
    if not os.path.exists(path):
        raise CLIError(f"model file not found: {os.path.abspath(path)}")
    import zipfile

    if path.endswith(".keras") and os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise CLIError(f"cannot load the model {path!r}: it is not a .keras file (a zip archive written by "
                       "model.save); it may be truncated or corrupt.")
    library()
    import keras

    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - reported to the user as is
        raise CLIError(f"cannot load the model {path!r}: {e}") from e


def base_model(model):
    """The classifier an `AdversarialModel` wraps; any other model as it is."""
    return model.base_model if isinstance(model, library().AdversarialModel) else model
