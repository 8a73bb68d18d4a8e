"""Relations between features: differentiable `g(x) ≤ 0` and `h(x) = 0` constraints.

A relation is a callable on a batch of records `x` of shape `(batch, features)`
returning `(batch,)` or `(batch, k)` values. `Relation` wraps it with its kind
(`"<="` or `"=="`), a tolerance, and optionally a *repair*: a function that
recomputes derived features (`outputs`) from the others so that an equality
holds exactly (total bytes = packets × mean size). Attacks use the relation's
`violation` as a differentiable penalty and its `repair` after each step; the
independent checker (`keras_adv.domains.check_examples`) calls only the
relation itself.

Serialization: a relation serializes when its function does, i.e. a
`keras.saving.register_keras_serializable` function or object such as
`LessEqual` below; a lambda raises a clear error in `get_config`.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

__all__ = ["Relation", "LessEqual"]

_KINDS = ("<=", "==")


def _serialize_fn(fn, what):
    if callable(fn) and getattr(fn, "__name__", "") == "<lambda>":
        raise ValueError(
            f"{what} is a lambda and cannot be serialized: define it as a function decorated with "
            "`@keras.saving.register_keras_serializable()` (or use keras_adv.domains.LessEqual)."
        )
    try:
        return keras.saving.serialize_keras_object(fn)
    except Exception as e:  # noqa: BLE001 - re-raised with the argument named
        raise ValueError(f"{what} cannot be serialized ({e}).") from None


def _feature_refs(arg, items):
    """A list of feature references from `items`: ints (indices) and strs (names)."""
    out = []
    for item in np.atleast_1d(np.asarray(items, dtype=object)).tolist():
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            out.append(int(item))
        elif isinstance(item, (float, np.floating)) and float(item).is_integer():
            out.append(int(item))
        else:
            raise TypeError(f"LessEqual: `{arg}` must list feature indices or names, got {item!r}.")
    return out


@keras.saving.register_keras_serializable(package="keras_adv")
class LessEqual:
    """`x[:, left] ≤ x[:, right] + margin`, elementwise over feature lists (a linear `g(x) ≤ 0`).

    `left` and `right` list feature indices or names; names are resolved by the
    `FeatureSpace` the relation is given to (from its `names`), which also
    checks every index against its number of features.

    Example: every "worst" measurement of the breast-cancer table is at least
    its "mean": `LessEqual(left=[0, 1, ...], right=[20, 21, ...])`, or
    `LessEqual(left=["syn_packets"], right=["fwd_packets"])`.
    """

    def __init__(self, left: Sequence[Union[int, str]], right: Sequence[Union[int, str]], margin: float = 0.0):
        self.left = _feature_refs("left", left)
        self.right = _feature_refs("right", right)
        if len(self.left) != len(self.right) or not self.left:
            raise ValueError(
                f"LessEqual: `left` and `right` must be non-empty lists of features of the same length, "
                f"got {len(self.left)} and {len(self.right)}."
            )
        self.margin = float(margin)

    def resolve(self, names: Optional[Sequence[str]], n_features: int) -> "LessEqual":
        """This relation on feature indices: names looked up in `names`, indices checked against `n_features`.

        Returns `self` when it already holds valid indices only. Raises a
        `ValueError` naming the argument for an unknown name or an index
        outside `0..n_features - 1`.
        """
        resolved = {}
        for arg in ("left", "right"):
            out = []
            for item in getattr(self, arg):
                if isinstance(item, str):
                    if names is None or item not in names:
                        known = "the FeatureSpace has no `names`" if names is None else f"`names` are {list(names)}"
                        raise ValueError(f"LessEqual `{arg}` names feature {item!r}, which is not a feature "
                                         f"name ({known}).")
                    out.append(list(names).index(item))
                else:
                    if not 0 <= item < n_features:
                        raise ValueError(f"LessEqual `{arg}` holds index {item}, outside 0..{n_features - 1} "
                                         f"(the FeatureSpace has {n_features} features).")
                    out.append(item)
            resolved[arg] = out
        if resolved["left"] == self.left and resolved["right"] == self.right:
            return self
        return LessEqual(resolved["left"], resolved["right"], margin=self.margin)

    @_no_autograph
    def __call__(self, x):
        unresolved = [i for i in self.left + self.right if isinstance(i, str)]
        if unresolved:
            raise ValueError(f"LessEqual names features {unresolved}: give it to a FeatureSpace with `names` "
                             "(which resolves them), or use feature indices.")
        x = tf.convert_to_tensor(x)
        return tf.gather(x, self.left, axis=1) - tf.gather(x, self.right, axis=1) - self.margin

    def get_config(self):
        return {"left": self.left, "right": self.right, "margin": self.margin}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_adv")
class Relation:
    """A constraint between features, satisfied when `fn(x) ≤ tolerance` (`"<="`) or `|fn(x)| ≤ tolerance` (`"=="`).

    Args:
        fn: differentiable `x -> (batch,)` or `(batch, k)` (TensorFlow ops).
        kind: `"<="` for `g(x) ≤ 0`, `"=="` for `h(x) = 0`.
        tolerance: slack allowed (absolute; write scale-free relations, e.g.
            `total / (packets · size) − 1`, so one tolerance fits all records).
        repair: optional `x -> x` that recomputes the derived features `outputs`
            from the others (used by attacks after each step, never by the checker).
        outputs: indices of the features `repair` writes. They follow the
            others and are not counted in an attack's budget.
        name: a name for error messages.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        kind: str = "<=",
        tolerance: float = 1e-4,
        repair: Optional[Callable] = None,
        outputs: Optional[Sequence[int]] = None,
        name: Optional[str] = None,
    ):
        if isinstance(fn, dict):
            fn = keras.saving.deserialize_keras_object(fn)
        if isinstance(repair, dict):
            repair = keras.saving.deserialize_keras_object(repair)
        if not callable(fn):
            raise TypeError(f"Relation: `fn` must be callable x -> (batch,) values, got {fn!r}.")
        if kind not in _KINDS:
            raise ValueError(f"Relation: `kind` must be '<=' (g(x) <= 0) or '==' (h(x) = 0), got {kind!r}.")
        tolerance = float(tolerance)
        if not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"Relation: `tolerance` must be a finite number >= 0, got {tolerance!r}.")
        if repair is not None and not callable(repair):
            raise TypeError(f"Relation: `repair` must be callable x -> x or None, got {repair!r}.")
        if repair is not None and not outputs:
            raise ValueError("Relation: a `repair` needs `outputs`, the indices of the features it recomputes.")
        self.fn = fn
        self.kind = kind
        self.tolerance = tolerance
        self.repair = repair
        self.outputs = [int(i) for i in (outputs or [])]
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__

    @_no_autograph
    def values(self, x):
        """`fn(x)` as a float32 `(batch, k)` tensor."""
        v = tf.cast(self.fn(x), tf.float32)
        return tf.reshape(v, [tf.shape(v)[0], -1])

    @_no_autograph
    def violation(self, x):
        """Per-example differentiable violation ≥ 0, zero when satisfied exactly: Σ relu(g) or Σ |h|."""
        v = self.values(x)
        v = tf.nn.relu(v) if self.kind == "<=" else tf.abs(v)
        return tf.reduce_sum(v, axis=1)

    def get_config(self):
        what = f"Relation {self.name!r}"
        return {
            "fn": _serialize_fn(self.fn, f"{what}: `fn`"),
            "kind": self.kind,
            "tolerance": self.tolerance,
            "repair": None if self.repair is None else _serialize_fn(self.repair, f"{what}: `repair`"),
            "outputs": self.outputs,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Relation({self.name!r}, kind={self.kind!r}, tolerance={self.tolerance})"
