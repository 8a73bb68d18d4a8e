"""`keras-adv list`: the names the other commands accept, read from the library's registries."""

from __future__ import annotations

from keras_adv.cli._startup import library
from keras_adv.cli.registry import attack_registry, objective_names

__all__ = ["run"]


def run(args) -> int:
    ka = library()
    datasets, presets = ka.datasets, ka.models.presets
    print("datasets (--dataset):")
    for name in datasets.available():
        d = datasets.info(name)
        print(f"  {name:<14} {'x'.join(map(str, d.input_shape)):<8} {d.num_classes:>3} classes  {d.description}")
    print("model presets (--model):\n  " + ", ".join(presets.available()))
    print("attacks (--attack, --attacks, --judges):\n  " + ", ".join(attack_registry()))
    print("objectives (--objective):\n  " + ", ".join(objective_names()))
    return 0
