"""Transfer (black-box) attacks: examples crafted on surrogate models, evaluated on targets.

Papernot et al. 2016, "Transferability in Machine Learning"; a defence that
holds white-box but falls to examples transferred from an undefended
surrogate is masking gradients (Athalye et al. 2018).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from keras_adv.attacks.attack import Attack
from keras_adv.utils.validation import check_number
from keras_adv.evaluation import _common

__all__ = ["TransferMatrix", "transfer_matrix", "transfer_attack"]


class TransferMatrix:
    """Accuracy of each target model on adversarial examples crafted on each source model.

    Attributes:
        sources, targets: model names (rows, columns).
        accuracy: `(len(sources), len(targets))` array: accuracy of target `j`
            on examples crafted on source `i`. Where a source is also a target,
            that entry is the white-box number.
        success_rate: same shape: among examples target `j` classifies
            correctly when clean, the fraction the transferred examples break.
        clean_accuracy: `{target: clean accuracy}`.
        epsilon: the budget used.
    """

    def __init__(self, sources, targets, accuracy, success_rate, clean_accuracy, epsilon, attack_name):
        self.sources = list(sources)
        self.targets = list(targets)
        self.accuracy = np.asarray(accuracy, float)
        self.success_rate = np.asarray(success_rate, float)
        self.clean_accuracy = dict(clean_accuracy)
        self.epsilon = epsilon
        self.attack_name = attack_name

    def __getitem__(self, key):
        source, target = key
        return float(self.accuracy[self.sources.index(source), self.targets.index(target)])

    def to_dict(self) -> Dict[str, Any]:
        return {
            "attack": self.attack_name,
            "epsilon": self.epsilon,
            "sources": self.sources,
            "targets": self.targets,
            "clean_accuracy": {k: float(v) for k, v in self.clean_accuracy.items()},
            "accuracy": self.accuracy.tolist(),
            "success_rate": [[None if np.isnan(v) else float(v) for v in row] for row in self.success_rate],
        }

    def __str__(self):
        w = max(len(n) for n in self.sources + self.targets + ["source \\ target"]) + 2
        lines = [f"Transfer matrix: {self.attack_name} at ε={self.epsilon}; accuracy of the target "
                 "(columns) on examples crafted on the source (rows)",
                 "source \\ target".ljust(w) + "".join(t.ljust(w) for t in self.targets),
                 "(clean)".ljust(w) + "".join(f"{self.clean_accuracy[t]:<{w}.4f}" for t in self.targets)]
        for i, s in enumerate(self.sources):
            lines.append(s.ljust(w) + "".join(f"{a:<{w}.4f}" for a in self.accuracy[i]))
        return "\n".join(lines)

    __repr__ = __str__


def transfer_matrix(
    attack: Attack,
    sources: Mapping[str, Any],
    x,
    y=None,
    *,
    targets: Optional[Mapping[str, Any]] = None,
    epsilon: Optional[float] = None,
    batch_size: int = 256,
    seed: Optional[int] = 0,
) -> TransferMatrix:
    """Crafts adversarial examples on every source and evaluates them on every target.

    Example:

    ```python
    m = keras_adv.evaluation.transfer_matrix(
        keras_adv.attacks.PGD(epsilon=0.2, steps=20),
        sources={"surrogate": undefended, "robust": robust}, x=x_test, y=y_test,
        targets={"robust": robust, "undefended": undefended})
    print(m); m["surrogate", "robust"]
    ```

    Args:
        attack: the attack run on each source.
        sources: `{name: model}` surrogates (models or `.keras` paths).
        x, y: data (arrays, an `(x, y)` tuple, or a `tf.data.Dataset`).
        targets: `{name: model}` evaluated; defaults to `sources` (a square matrix
            whose diagonal is white-box).
        epsilon: overrides the attack's ε.
        batch_size: batch size.
        seed: seed of attacks without one.

    Returns:
        A `TransferMatrix`.
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"`attack` must be a keras_adv.attacks.Attack, got {type(attack).__name__}.")
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError("`sources` must be a non-empty dict {name: model}.")
    if targets is None:
        targets = sources
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError("`targets` must be a non-empty dict {name: model}.")
    batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
    x, y_raw = _common.to_numpy(x, y, argument="x")
    labels = _common.labels_of(y_raw)
    loaded = {}

    def model_of(name, m):
        if name not in loaded:
            loaded[name] = _common.load_model(m)
        return loaded[name]

    src = {n: model_of(n, m) for n, m in sources.items()}
    tgt = {n: (src[n] if n in src and targets[n] is sources.get(n) else model_of(n, m)) for n, m in targets.items()}
    clean_ok = {n: _common.predict_classes(m, x, batch_size) == labels for n, m in tgt.items()}
    eps = "default" if epsilon is None else check_number("epsilon", epsilon, minimum=0.0)
    acc = np.zeros((len(src), len(tgt)))
    rate = np.zeros((len(src), len(tgt)))
    for i, (sn, sm) in enumerate(src.items()):
        x_adv = _common.run_attack(attack, sm, x, y_raw, epsilon=eps, batch_size=batch_size, seed=seed)
        for j, (tn, tm) in enumerate(tgt.items()):
            ok = _common.predict_classes(tm, x_adv, batch_size) == labels
            acc[i, j] = ok.mean()
            n = clean_ok[tn].sum()
            rate[i, j] = (clean_ok[tn] & ~ok).sum() / n if n else np.nan
    return TransferMatrix(list(src), list(tgt), acc, rate, {n: v.mean() for n, v in clean_ok.items()},
                          attack.epsilon if epsilon is None else float(epsilon), attack.name)


def transfer_attack(attack: Attack, source, target, x, y=None, *, epsilon: Optional[float] = None,
                    batch_size: int = 256, seed: Optional[int] = 0) -> float:
    """Accuracy of `target` on adversarial examples crafted on `source` (one entry of the matrix)."""
    m = transfer_matrix(attack, {"source": source}, x, y, targets={"target": target}, epsilon=epsilon,
                        batch_size=batch_size, seed=seed)
    return float(m.accuracy[0, 0])
