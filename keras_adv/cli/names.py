"""The names `keras-adv list` and `--help` show, without importing TensorFlow.

The truth is the library's registries (`cli/registry.py`: exported attacks, the
objectives registry, the presets, the dataset catalogue). Reading them needs
TensorFlow, which takes seconds to import, so `list` and `--help` read a copy of
them, `names.json`, written from the registries by

    python -m keras_adv.cli.names          # rewrites keras_adv/cli/names.json

`tests/cli/test_names.py` fails whenever the copy and the registries differ, so
the copy cannot drift: a new attack, objective, preset or dataset makes that test
say to run the command above. The commands that compute (`train`, `evaluate`,
`export`) check names against the live registries, not against this copy.
"""

from __future__ import annotations

import json
import os
from typing import Dict

__all__ = ["load", "live", "write", "PATH"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "names.json")


def load() -> Dict:
    """The copy of the registries (standard library only)."""
    with open(PATH, encoding="utf-8") as f:
        return json.load(f)


def live() -> Dict:
    """The same content, read from the library's registries (imports TensorFlow)."""
    from keras_adv.cli._startup import library
    from keras_adv.cli.registry import attack_registry, is_constrained, objective_names

    ka = library()
    datasets = []
    for name in ka.datasets.available():
        d = ka.datasets.info(name)
        datasets.append({"name": name, "input_shape": list(d.input_shape), "num_classes": int(d.num_classes),
                         "description": d.description})
    return {
        "datasets": datasets,
        "presets": list(ka.models.presets.available()),
        "attacks": [name for name in attack_registry() if not is_constrained(name)],
        "table_attacks": [name for name in attack_registry() if is_constrained(name)],
        "objectives": list(objective_names()),
    }


def write() -> str:
    """Rewrites `names.json` from the registries; returns its path."""
    text = json.dumps(live(), indent=1, sort_keys=True) + "\n"
    tmp = PATH + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, PATH)
    return PATH


if __name__ == "__main__":  # pragma: no cover
    print(write())
