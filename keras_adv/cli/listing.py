"""`keras-adv list`: the names the other commands accept.

Printed from `names.json`, the tested copy of the library's registries
(`cli/names.py`), so `list` answers without importing TensorFlow.
"""

from __future__ import annotations

from keras_adv.cli import names

__all__ = ["run"]


def run(args) -> int:
    table = names.load()
    print("datasets (--dataset):")
    for d in table["datasets"]:
        shape = "x".join(map(str, d["input_shape"]))
        print(f"  {d['name']:<14} {shape:<8} {d['num_classes']:>3} classes  {d['description']}")
    print("model presets (--model):\n  " + ", ".join(table["presets"]))
    print("  (text models: keras_adv.models.presets.text_classifier(vocab_size, ...) in Python, docs/text.md)")
    tables = ", ".join(d["name"] for d in table["datasets"] if len(d["input_shape"]) == 1)
    print("attacks (--attack, --attacks, --judges):\n  " + ", ".join(table["attacks"]))
    print(f"attacks for tables ({tables}: they keep records valid in the dataset's feature space):\n  "
          + ", ".join(table["table_attacks"]))
    print("objectives (--objective):\n  " + ", ".join(table["objectives"]))
    return 0
