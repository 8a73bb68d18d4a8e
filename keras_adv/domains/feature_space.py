"""`FeatureSpace`: what an attacker may change in a tabular record.

A feature space describes valid records of `n` features: per-feature bounds
(a side may be ±inf), which features may change (`mutable`), which are
integers, which groups are one-hot categories, and relations between features
(`g(x) ≤ 0`, `h(x) = 0` within a tolerance), and which features may only
increase (or only decrease) from the clean record (`monotone`). Constrained attacks
(`keras_adv.attacks.CAPGD`, `Evolutionary`, `ConstrainedAutoAttack`) take one
as their `domain`; every record they return satisfies it (checked
independently by `keras_adv.domains.check_examples`).

The attack budget ε is measured on scaled features, `(x_adv − x) / scale`
(by default `scale = upper − lower` from the data, so ε = 0.1 means "10% of
each feature's range"), over the *budgeted* features: mutable, numeric, not
written by a relation's repair. One-hot groups that are mutable may switch
category; derived features follow the features they are computed from.

Example:

```python
space = keras_adv.domains.FeatureSpace.from_data(
    x_train, immutable=["dst_port"], categorical=[["tcp", "udp", "icmp"]],
    relations=[keras_adv.domains.Relation(fn, kind="==", tolerance=1e-3)])
attack = keras_adv.attacks.CAPGD(epsilon=0.1, domain=space)
```
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.domains.base import Domain
from keras_adv.domains.checker import check_examples
from keras_adv.domains.relations import LessEqual, Relation

__all__ = ["FeatureSpace"]


def _as_vector(name, value, n, dtype, default):
    if value is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"`{name}` must be a scalar or have one entry per feature ({n} features), "
            f"got shape {arr.shape}."
        )
    return arr.astype(dtype)


def _as_mask(name, value, n, default):
    """A per-feature bool mask from None (`default`), a bool, or one bool (or 0/1) per feature."""
    if value is not None:
        arr = np.asarray(value)
        hint = (" ('auto' is understood by FeatureSpace.from_data, which detects integer columns from the data)"
                if name == "integer" else "")
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"`{name}` must be a bool mask (True/False per feature, or one bool for all), got {value!r}"
                f"{hint}. To name features, build the mask from `names`, e.g. "
                f"[n in {{...}} for n in names].")
        if arr.dtype.kind != "b" and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"`{name}` must be a bool mask (True/False per feature), got {value!r}; "
                             "it is not a list of feature indices.")
    return _as_vector(name, value, n, bool, default)


_DIRECTIONS = {"increase": 1, "decrease": -1, "+": 1, "-": -1}


def _direction(where, value):
    """+1 / -1 / 0 from "increase" / "decrease" / a number in {1, -1, 0}; ValueError naming `where` otherwise."""
    if isinstance(value, str):
        if value.lower() in _DIRECTIONS:
            return _DIRECTIONS[value.lower()]
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        if value in (1, -1, 0):
            return int(value)
    raise ValueError(f"`{where}` must be 'increase' (+1), 'decrease' (-1) or 0 (either way), got {value!r}.")


@keras.saving.register_keras_serializable(package="keras_adv")
class FeatureSpace(Domain):
    """A constrained tabular input domain (per-feature bounds, mutability, types, relations).

    Args:
        lower: per-feature lower bounds (array, or a scalar for all); `-inf` allowed.
        upper: per-feature upper bounds; `inf` allowed.
        mutable: bool mask of the features an attacker may change (default all).
        integer: bool mask of integer features (results are rounded, in
            bounds and within the budget).
        monotone: the direction each feature may move *relative to the clean
            record*: one entry per feature, `+1` (may only increase), `-1`
            (may only decrease) or `0` (either way); or a dict
            `{feature: "increase" | "decrease"}` keyed by feature names or
            indices (e.g. `{"packets": "increase"}`: an attacker can add
            packets to a flow but not remove them). A monotone feature that is
            also immutable simply stays fixed; one-hot features and derived
            features (a relation's `outputs`) cannot be monotone.
        categorical: one-hot groups, each a list of feature indices (or
            names): exactly one of them is 1, the others 0.
        relations: constraints, each a `keras_adv.domains.Relation` or a
            callable `g(x) -> (batch,)` meaning `g(x) ≤ 0`.
        scale: per-feature scale of the budget; default `upper − lower`
            where finite and positive, else 1.
        names: feature names (for messages, and the keys of dict inputs).
        n_features: the number of features when every other argument is a scalar.
    """

    def __init__(
        self,
        *,
        lower=-np.inf,
        upper=np.inf,
        mutable=None,
        integer=None,
        monotone=None,
        categorical: Optional[Sequence[Sequence]] = None,
        relations: Optional[Sequence] = None,
        scale=None,
        names: Optional[Sequence[str]] = None,
        n_features: Optional[int] = None,
    ):
        n = n_features
        for arg, value in (("lower", lower), ("upper", upper), ("mutable", mutable), ("integer", integer),
                           ("monotone", None if isinstance(monotone, dict) else monotone),
                           ("scale", scale), ("names", names)):
            if value is not None and np.ndim(value) == 1:
                if n is None:
                    n = len(value)
                elif len(value) != n:
                    raise ValueError(
                        f"`{arg}` has {len(value)} entries but the FeatureSpace has {n} features "
                        "(from the arguments before it); give one entry per feature."
                    )
        if n is None or n < 1:
            raise ValueError("FeatureSpace needs the number of features: give per-feature `lower`/`upper` "
                             "arrays, `names`, or `n_features`.")
        self.n_features = int(n)
        self.names = None if names is None else [str(s) for s in names]
        if self.names is not None and len(set(self.names)) != n:
            raise ValueError("`names` must be unique feature names.")
        try:
            self._lower = _as_vector("lower", lower, n, np.float32, -np.inf)
            self._upper = _as_vector("upper", upper, n, np.float32, np.inf)
        except (TypeError, ValueError) as e:
            if "one entry per feature" in str(e):
                raise
            raise ValueError(f"`lower` and `upper` must be numbers or numeric arrays ({e}).") from None
        for arg, arr in (("lower", self.lower), ("upper", self.upper)):
            if np.isnan(arr).any():
                j = int(np.argmax(np.isnan(arr)))
                raise ValueError(f"`{arg}`[{j}] (feature {self._fname(j)}) is NaN; use ±inf for an open side.")
            # TensorFlow flushes subnormal float32 numbers to zero on CPU: such a bound would not be honoured
            # (x = 1e-45 is clipped to 0 and 0 >= 1e-45 holds there). Found by tests/reliability/test_fuzz.py.
            tiny = np.finfo(np.float32).tiny
            subnormal = (arr != 0) & (np.abs(arr) < tiny)
            if subnormal.any():
                j = int(np.argmax(subnormal))
                raise ValueError(f"`{arg}`[{j}] (feature {self._fname(j)}) = {arr[j]:g} is a subnormal float32 number, "
                                 f"which TensorFlow flushes to zero; use 0 or a bound of magnitude >= {tiny:g}.")
        reversed_ = self.lower > self.upper
        if reversed_.any():
            j = int(np.argmax(reversed_))
            raise ValueError(
                f"Bounds reversed for feature {self._fname(j)}: `lower`[{j}] = {self.lower[j]:g} > "
                f"`upper`[{j}] = {self.upper[j]:g}."
            )
        infinite = (self.lower == self.upper) & ~np.isfinite(self.lower)
        if infinite.any():
            j = int(np.argmax(infinite))
            raise ValueError(f"Feature {self._fname(j)} has `lower`[{j}] = `upper`[{j}] = {self.lower[j]:g}: no "
                             "finite value lies in it; give finite bounds (or -inf, inf for an unbounded feature).")
        self.mutable = _as_mask("mutable", mutable, n, True)
        self.integer = _as_mask("integer", integer, n, False)
        empty = self.integer & (np.ceil(self.lower) > np.floor(self.upper))
        if empty.any():
            j = int(np.argmax(empty))
            raise ValueError(f"Integer feature {self._fname(j)} (`integer`) has bounds [{self.lower[j]:g}, "
                             f"{self.upper[j]:g}], which hold no integer: widen them or drop it from `integer`.")
        self.categorical = [self._indices(f"categorical[{g}]", grp) for g, grp in enumerate(categorical or [])]
        seen = {}
        for g, grp in enumerate(self.categorical):
            if len(grp) < 2:
                raise ValueError(f"`categorical`[{g}] must list at least 2 one-hot features, got {grp}.")
            for j in grp:
                if j in seen:
                    raise ValueError(f"Feature {self._fname(j)} is in two one-hot groups: `categorical`[{seen[j]}] "
                                     f"and `categorical`[{g}].")
                seen[j] = g
                if self.lower[j] > 0 or self.upper[j] < 1:
                    raise ValueError(f"One-hot feature {self._fname(j)} (`categorical`[{g}]) must allow 0 and 1, "
                                     f"but `lower`/`upper` are [{self.lower[j]:g}, {self.upper[j]:g}].")
            if len({bool(self.mutable[j]) for j in grp}) > 1:
                raise ValueError(f"One-hot group `categorical`[{g}] mixes mutable and immutable features; "
                                 "a group is changed as a whole or not at all.")
        self.integer[list(seen)] = False  # one-hot values are handled by their group
        self.relations = [self._relation(i, r) for i, r in enumerate(relations or [])]
        derived = np.zeros(n, bool)
        for i, rel in enumerate(self.relations):
            for j in rel.outputs:
                if not 0 <= j < n:
                    raise ValueError(f"`relations`[{i}] ({rel.name!r}): `outputs` index {j} is outside 0..{n - 1}.")
                if not self.mutable[j]:
                    # the repair would rewrite it while the attacks freeze it: every attacked record would
                    # break the relation or the immutability and fall back to the clean record
                    raise ValueError(
                        f"`relations`[{i}] ({rel.name!r}): its repair writes feature {self._fname(j)} (`outputs`), "
                        "which `mutable` declares immutable. A derived feature follows the features it is "
                        "computed from and is not counted in the budget: declare it mutable (it changes only "
                        "when its inputs do), or drop the relation's `repair`/`outputs`.")
            derived[rel.outputs] = True
        self.derived = derived
        #: per-feature direction relative to the clean record: +1 only up, -1 only down, 0 free (int8)
        self.monotone = self._monotone(monotone, seen, derived)
        if scale is None:
            width = self.upper.astype(np.float64) - self.lower.astype(np.float64)
            ok = np.isfinite(width) & (width > 0)
            self.scale = np.where(ok, width, 1.0).astype(np.float32)
        else:
            self.scale = _as_vector("scale", scale, n, np.float32, 1.0)
            bad = ~(np.isfinite(self.scale) & (self.scale > 0))
            if bad.any():
                j = int(np.argmax(bad))
                raise ValueError(f"`scale`[{j}] (feature {self._fname(j)}) must be finite and > 0, "
                                 f"got {self.scale[j]!r}.")
        cat = np.zeros(n, bool)
        cat[list(seen)] = True
        self.is_categorical = cat
        #: features an attacker's budget counts: mutable, numeric, not derived
        self.budget_mask = self.mutable & ~cat & ~derived
        #: features a gradient step moves (one-hot values relaxed, then re-projected)
        self.step_mask = self.mutable & ~derived
        self._check_relation_shapes()

    # -------------------------------------------------------------- helpers
    @property
    def lower(self) -> np.ndarray:
        """Per-feature lower bounds (float32, `-inf` for an open side)."""
        return self._lower

    @property
    def upper(self) -> np.ndarray:
        """Per-feature upper bounds (float32, `inf` for an open side)."""
        return self._upper

    @property
    def feature_names(self):
        return self.names if self.names is not None else [f"feature_{j}" for j in range(self.n_features)]

    def _fname(self, j):
        return f"{self.names[j]!r} (index {j})" if self.names is not None else f"index {j}"

    def _indices(self, arg, items):
        out = []
        for item in np.atleast_1d(np.asarray(items, dtype=object)):
            if isinstance(item, str):
                if self.names is None or item not in self.names:
                    raise ValueError(f"`{arg}` names feature {item!r}, which is not in `names`.")
                out.append(self.names.index(item))
            else:
                j = int(item)
                if not 0 <= j < self.n_features:
                    raise ValueError(f"`{arg}` holds index {j}, outside 0..{self.n_features - 1}.")
                out.append(j)
        return out

    def _monotone(self, value, one_hot, derived):
        n = self.n_features
        if value is None:
            return np.zeros(n, np.int8)
        if isinstance(value, dict):
            out = np.zeros(n, np.int8)
            for key, direction in value.items():
                if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, int, np.integer)):
                    raise ValueError(f"`monotone` keys must be feature names or indices, got {key!r}.")
                (j,) = self._indices(f"monotone[{key!r}]", [key])
                out[j] = _direction(f"monotone[{key!r}]", direction)
        else:
            if np.asarray(value).dtype.kind == "b":
                raise ValueError(f"`monotone` gives a direction per feature (+1 'increase', -1 'decrease', 0 either "
                                 f"way), not a bool mask: got {value!r}.")
            arr = np.asarray(value, dtype=object)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
                raise ValueError(f"`monotone` must have one entry per feature ({n} features) or be a dict "
                                 f"{{feature: 'increase' | 'decrease'}}, got shape {arr.shape}.")
            if arr.ndim == 0:
                arr = np.full(n, arr.item(), dtype=object)
            out = np.array([_direction(f"monotone[{j}]", v.item() if hasattr(v, "item") else v)
                            for j, v in enumerate(arr)], np.int8)
        for j in np.flatnonzero(out):
            if j in one_hot:
                raise ValueError(
                    f"`monotone` gives a direction to feature {self._fname(j)}, which is in one-hot group "
                    f"`categorical`[{one_hot[j]}]: a category switch raises one feature and lowers another, so "
                    "one-hot features cannot be monotone (make the group immutable to keep the category).")
            if derived[j]:
                raise ValueError(
                    f"`monotone` gives a direction to feature {self._fname(j)}, which a relation's repair "
                    "recomputes (`outputs`) from other features and could move either way: give the direction "
                    "to the features it is computed from instead.")
        return out

    def _relation(self, i, rel):
        if isinstance(rel, dict):
            rel = keras.saving.deserialize_keras_object(rel)
        if not isinstance(rel, Relation):
            if not callable(rel):
                raise TypeError(f"`relations`[{i}] must be a keras_adv.domains.Relation or a callable g(x) <= 0, "
                                f"got {rel!r}.")
            rel = Relation(rel, kind="<=", name=getattr(rel, "__name__", f"relations[{i}]"))
        if isinstance(rel.fn, LessEqual):
            # feature names resolved against `names`, indices checked against the number of features
            try:
                fn = rel.fn.resolve(self.names, self.n_features)
            except ValueError as e:
                raise ValueError(f"`relations`[{i}] ({rel.name!r}): {e}") from None
            if fn is not rel.fn:
                rel = Relation(fn, kind=rel.kind, tolerance=rel.tolerance, repair=rel.repair, outputs=rel.outputs,
                               name=rel.name)
        return rel

    def _check_relation_shapes(self):
        """Runs every relation (and repair) once on a probe batch, eagerly and in a graph.

        Attacks and `AdversarialModel.fit` run relations inside `tf.function`:
        one written with NumPy (or anything that needs concrete values) works
        eagerly but not there. It is refused here, naming the relation, rather
        than deep inside `fit`. (The graph probe only builds the ops in a
        throwaway `tf.Graph`; nothing is traced or run.)
        """
        probe = np.where(np.isfinite(self.lower), self.lower, np.where(np.isfinite(self.upper), self.upper, 0.0))
        probe = np.stack([probe, probe]).astype(np.float32)
        n = self.n_features
        for i, rel in enumerate(self.relations):
            for what, fn in (("relation", rel.fn), ("repair", rel.repair)):
                if fn is None:
                    continue
                where = f"`relations`[{i}] ({rel.name!r})" + ("" if what == "relation" else ": its `repair`")
                try:
                    v = fn(tf.constant(probe))
                except Exception as e:  # noqa: BLE001 - re-raised with the relation named
                    raise ValueError(f"{where} fails on a (2, {n}) batch of records: {type(e).__name__}: {e}") from None
                if isinstance(fn, LessEqual):
                    continue  # graph-safe by construction (and the shape is right)
                try:
                    with tf.Graph().as_default():
                        fn(tf.constant(probe))
                except Exception as e:  # noqa: BLE001 - re-raised with the relation named
                    raise ValueError(
                        f"{where} works eagerly but fails in a TensorFlow graph, where attacks and "
                        f"AdversarialModel.fit run it (inside tf.function): {type(e).__name__}: {_first_line(e)} "
                        "Write it with TensorFlow ops (tf.* or keras.ops) on the tensor `x`, not NumPy.") from None
                shape = tuple(getattr(v, "shape", np.shape(v)))
                if what == "repair":
                    if shape != (2, n):
                        raise ValueError(f"{where} must return records of the input's shape (batch, {n}); for x "
                                         f"of shape (2, {n}) it returned shape {shape}.")
                elif len(shape) not in (1, 2) or shape[0] != 2:
                    raise ValueError(
                        f"{where} must return one value per record, shape (batch,) or "
                        f"(batch, k); for x of shape (2, {n}) it returned shape {shape}."
                    )

    def _const(self, value, dtype):
        return tf.constant(value, dtype=dtype)

    # -------------------------------------------------------------- checks
    def check_columns(self, x, *, argument: str = "x"):
        """Refuses a pandas DataFrame whose columns are not this space's `names`, in order.

        Records are read by position, so a DataFrame with the same columns in
        another order (a SQL query, a `df[cols]` selection) would move the
        wrong features, immutable ones included. Anything without `columns`
        (arrays, tensors) and spaces without `names` pass unchanged.
        """
        columns = getattr(x, "columns", None)
        if columns is None or self.names is None or isinstance(x, (np.ndarray, tf.Tensor)):
            return
        columns = [str(c) for c in columns]
        if columns == self.names:
            return
        if sorted(columns) == sorted(self.names):
            hint = "the same columns in another order: select them in the space's order, `x[space.names]`"
        else:
            missing = [n for n in self.names if n not in columns]
            extra = [c for c in columns if c not in self.names]
            hint = f"missing {missing}, not in the space {extra}"
        raise ValueError(f"`{argument}` is a DataFrame whose columns are not the FeatureSpace's names in order "
                         f"({hint}); records are read by position.")

    def check(self, x, *, argument: str = "x"):
        """Raises `ValueError` naming the feature and argument if records `x` are outside the space.

        Eager inputs get the full check (shape, finite, bounds, integers, one-hot
        groups, relations) with the first offending example named; in a graph
        the shape is checked at trace time and bounds/finiteness in-graph.
        """
        if isinstance(x, tf.Tensor) and not tf.executing_eagerly():
            if x.shape.rank != 2 or (x.shape[-1] is not None and x.shape[-1] != self.n_features):
                raise ValueError(f"`{argument}` must have shape (batch, {self.n_features}) to match the "
                                 f"FeatureSpace, got shape {x.shape}.")
            ok = tf.reduce_all((x >= self._const(self.lower, x.dtype)) & (x <= self._const(self.upper, x.dtype)))
            check = tf.debugging.Assert(ok, [f"`{argument}` lies outside the FeatureSpace bounds (or is NaN)."])
            with tf.control_dependencies([check]):
                return tf.identity(x)
        result = check_examples(self, x, argument=argument)
        if result.messages:
            raise ValueError(result.messages[0])
        return x

    @_no_autograph
    def is_valid(self, x_adv, x=None, epsilon=None, norm=None):
        """In-graph per-example validity (bounds, immutables, monotone, integers, one-hot, relations, budget)."""
        dtype = x_adv.dtype
        ok = tf.reduce_all(
            (x_adv >= self._const(self.lower, dtype)) & (x_adv <= self._const(self.upper, dtype)), axis=1)
        if self.integer.any():
            idx = np.flatnonzero(self.integer)
            v = tf.gather(x_adv, idx, axis=1)
            ok &= tf.reduce_all(tf.equal(v, tf.round(v)), axis=1)
        for grp in self.categorical:
            v = tf.gather(x_adv, grp, axis=1)
            ok &= tf.reduce_all(tf.equal(v, 0.0) | tf.equal(v, 1.0), axis=1) & tf.equal(tf.reduce_sum(v, 1), 1.0)
        for rel in self.relations:
            v = rel.values(x_adv)
            bad = v > rel.tolerance if rel.kind == "<=" else tf.abs(v) > rel.tolerance
            ok &= ~tf.reduce_any(bad | ~tf.math.is_finite(v), axis=1)
        if x is not None:
            frozen = np.flatnonzero(~self.mutable)
            if frozen.size:
                ok &= tf.reduce_all(tf.equal(tf.gather(x_adv, frozen, axis=1), tf.gather(x, frozen, axis=1)), axis=1)
            if self.monotone.any():
                sign = self._const(self.monotone, dtype)
                ok &= tf.reduce_all((x_adv - x) * sign >= 0, axis=1)
            if epsilon is not None and norm is not None:
                ok &= self.distance(x_adv, x, norm) <= tf.cast(epsilon, dtype) * (1 + 1e-6) + 1e-7
        return ok

    # ------------------------------------------------------ Domain hooks
    def validate(self, x):
        """The `Domain` hook: `check(x)`."""
        return self.check(x, argument="x")

    @_no_autograph
    def project(self, x_adv, x=None):
        """The `Domain` hook: `repair(x_adv, x)` with integers rounded towards `x` (never farther from it).

        Derived features recomputed by a relation's repair may move farther
        from `x` than `x_adv` was (they follow the features they depend on);
        the constrained attacks measure their budget without them.
        """
        if x is None:
            x = x_adv
        return self.repair(x_adv, x, toward=True)

    @_no_autograph
    def restrict(self, delta, x=None):
        """The `Domain` hook: zero on the features a step cannot move (immutable, derived)."""
        return delta * self._const(self.step_mask, delta.dtype)

    def contains(self, x):
        """The `Domain` hook: per-example membership (without budget or immutability)."""
        return self.is_valid(tf.convert_to_tensor(x, tf.float32))

    @property
    def bounds(self):
        return (self.lower, self.upper)

    @property
    def is_scalar(self) -> bool:
        return False

    @property
    def width(self) -> float:
        return float(np.max(self.upper.astype(np.float64) - self.lower.astype(np.float64)))

    # ---------------------------------------------------------- attack ops
    @_no_autograph
    def distance(self, x_adv, x, norm):
        """Per-example scaled distance over the budgeted features, in `norm`."""
        d = (x_adv - x) / self._const(self.scale, x.dtype) * self._const(self.budget_mask, x.dtype)
        return norm.norm(d)

    @_no_autograph
    def ascent_direction(self, grad, norm, x_adv=None, x=None):
        """The steepest-ascent step for `grad` in the scaled metric, on the budgeted features.

        Zero on features that cannot move and on one-hot groups: those are not
        in the budget and take their own step (`categorical_direction`). Given
        the current records `x_adv` and the clean ones `x`, also zero on
        monotone features that sit at their clean value and whose gradient
        points the forbidden way (the step would be undone by `repair` and,
        in L2, waste budget).
        """
        scale = self._const(self.scale, grad.dtype)
        g = grad * scale * self._const(self.step_mask & ~self.is_categorical, grad.dtype)
        if self.monotone.any() and x_adv is not None and x is not None:
            sign = self._const(self.monotone, grad.dtype)
            blocked = (sign * g < 0) & (sign * (x_adv - x) <= 0)
            g = tf.where(blocked, tf.zeros_like(g), g)
        return norm.normalize(g) * scale

    @_no_autograph
    def categorical_direction(self, grad):
        """The ascent step of the mutable one-hot groups, each on its own scale (zero elsewhere).

        Per group, `grad` divided by its largest magnitude in the group, so every
        entry lies in [-1, 1] whatever the model's gradient scale. A step of
        relative size `r` followed by `repair` (argmax, the nearest one-hot
        vertex) switches from the current category `c` to `j` where
        `r · (d_j − d_c) > 1`: large steps explore switches of large
        first-order gain, small steps leave the category alone. One-hot groups
        are not in the budget (see the module docstring), so their step does
        not depend on ε.
        """
        out = tf.zeros_like(grad)
        for grp in self.categorical:
            if not self.step_mask[grp[0]]:
                continue
            g = tf.gather(grad, grp, axis=1)
            peak = tf.reduce_max(tf.abs(g), axis=1, keepdims=True)
            d = tf.math.divide_no_nan(g, peak)
            out = out + tf.matmul(d, tf.constant(_scatter_matrix(grp, self.n_features), grad.dtype))
        return out

    @_no_autograph
    def penalty(self, x):
        """Differentiable per-example total relation violation (0 when every relation holds exactly)."""
        total = tf.zeros([tf.shape(x)[0]], tf.float32)
        for rel in self.relations:
            total += rel.violation(x)
        return total

    @_no_autograph
    def random_start(self, x, epsilon, norm, seed):
        """A random point of the budget ball around `x`, each mutable one-hot group at a random category.

        A category switch is not counted in the budget, so a random point of
        the space within the budget may have any category (drawn uniformly).
        Monotone features are drawn on their allowed side (`orient`).
        """
        s_ball, s_cat = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        delta = norm.random_start(tf.shape(x), epsilon, s_ball, x.dtype) * self._const(self.scale, x.dtype)
        delta = self.orient(delta)
        x0 = x + delta * self._const(self.step_mask & ~self.is_categorical, x.dtype)
        groups = [g for g in self.categorical if self.step_mask[g[0]]]
        if groups:
            # a uniform draw per coordinate; repair's argmax makes each group a uniformly random category
            draw = tf.random.stateless_uniform(tf.shape(x), s_cat, dtype=x.dtype)
            cat = self._const(self.is_categorical & self.step_mask, x.dtype)
            x0 = x0 * (1.0 - cat) + draw * cat
        return self.budget_project(x, x0, epsilon, norm)

    @_no_autograph
    def orient(self, delta):
        """`delta` with each monotone feature's entry turned to its allowed direction (`sign · |delta|`).

        Flipping signs keeps every norm, so a random point of the ε-ball stays
        one, now on the allowed side (rather than half the draws being undone
        by `repair`). The identity without monotone features.
        """
        if not self.monotone.any():
            return delta
        sign = self._const(self.monotone, delta.dtype)
        return tf.where(tf.not_equal(sign, 0.0), sign * tf.abs(delta), delta)

    @_no_autograph
    def budget_project(self, x, x_adv, epsilon, norm):
        """Budget projection then repair: the budgeted features return to the scaled ε-ball around `x`."""
        x_adv = tf.cast(x_adv, x.dtype)
        if epsilon is not None:
            scale = self._const(self.scale, x.dtype)
            mask = self._const(self.budget_mask, x.dtype)
            d = norm.project((x_adv - x) / scale * mask, epsilon) * scale
            x_adv = x + d + (x_adv - x) * (1.0 - mask)
        return self.repair(x_adv, x, epsilon=epsilon, norm=norm)

    @_no_autograph
    def repair(self, x_adv, x, *, epsilon=None, norm=None, toward: bool = False):
        """Clips to bounds, freezes immutable features, re-projects one-hot groups, rounds integers, recomputes derived features.

        Monotone features that moved the forbidden way from `x` are set back
        to their value in `x` (integers of `x` stay on that side when rounded).
        Integer features are rounded to the nearest integer, or towards `x`
        where rounding would leave the budget (always with `toward=True`). Relations without a repair are
        not enforced here (attacks penalise them and return only valid records).
        """
        dtype = x.dtype
        lo, hi = self._const(self.lower, dtype), self._const(self.upper, dtype)
        x_adv = tf.clip_by_value(x_adv, lo, hi)
        x_adv = tf.where(self._const(self.mutable, tf.bool)[None, :], x_adv, x)
        if self.monotone.any():
            # never the forbidden way from x: moving towards x shrinks every norm, so the budget still holds
            up, down = self._const(self.monotone > 0, tf.bool), self._const(self.monotone < 0, tf.bool)
            x_adv = tf.where(up[None, :], tf.maximum(x_adv, x), x_adv)
            x_adv = tf.where(down[None, :], tf.minimum(x_adv, x), x_adv)
        n = self.n_features
        for grp in self.categorical:
            if not self.mutable[grp[0]]:
                continue
            hot = tf.one_hot(tf.argmax(tf.gather(x_adv, grp, axis=1), axis=1), len(grp), dtype=dtype)
            x_adv = _set_columns(x_adv, grp, hot, n)
        if self.integer.any():
            idx = np.flatnonzero(self.integer & self.mutable)
            v, v0 = tf.gather(x_adv, idx, axis=1), tf.gather(x, idx, axis=1)
            lo_i = tf.math.ceil(tf.gather(lo, idx))
            hi_i = tf.floor(tf.gather(hi, idx))
            rounded = tf.clip_by_value(tf.round(v), lo_i, hi_i)
            to_x = v0 + tf.where(v >= v0, tf.floor(v - v0), tf.math.ceil(v - v0))
            if toward:
                rounded = to_x
            elif epsilon is not None and norm is not None:
                cand = _set_columns(x_adv, idx, rounded, n)
                over = self.distance(cand, x, norm) > tf.cast(epsilon, dtype) * (1 + 1e-6)
                rounded = tf.where(over[:, None], to_x, rounded)
            x_adv = _set_columns(x_adv, idx, rounded, n)
        for rel in self.relations:
            if rel.repair is not None:
                x_adv = tf.cast(rel.repair(x_adv), dtype)
        return x_adv

    # ------------------------------------------------------ dict inputs
    @_no_autograph
    def flatten(self, inputs):
        """The `(batch, n_features)` float32 view of a dict of feature tensors (keys = `names`)."""
        if self.names is None:
            raise ValueError("Dict inputs need a FeatureSpace with `names` (the dict keys of the numeric features).")
        missing = [k for k in self.names if k not in inputs]
        if missing:
            raise ValueError(f"The input dict lacks the FeatureSpace features {missing}; it has {sorted(inputs)}.")
        cols = []
        for k in self.names:
            v = tf.convert_to_tensor(inputs[k])
            if v.shape.rank is not None and (v.shape.rank > 2 or (v.shape.rank == 2 and v.shape[-1] not in (1, None))):
                raise ValueError(f"Dict input {k!r} must hold one number per record, shape (batch,) or (batch, 1); "
                                 f"got shape {v.shape}.")
            if not (v.dtype.is_floating or v.dtype.is_integer):
                raise TypeError(f"Dict input {k!r} is named by the FeatureSpace but has dtype {v.dtype.name}; "
                                "only numeric features can be attacked (leave strings out of `names`).")
            cols.append(tf.reshape(tf.cast(v, tf.float32), [-1, 1]))
        return tf.concat(cols, axis=1)

    @_no_autograph
    def unflatten(self, flat, inputs):
        """`inputs` with the FeatureSpace features replaced by the columns of `flat` (same shapes and dtypes)."""
        out = dict(inputs)
        for j, k in enumerate(self.names):
            ref = tf.convert_to_tensor(inputs[k])
            out[k] = tf.cast(tf.reshape(flat[:, j], tf.shape(ref)), ref.dtype)
        return out

    # ------------------------------------------------------- construction
    @classmethod
    def from_data(
        cls,
        x,
        *,
        immutable: Sequence = (),
        categorical: Sequence[Sequence] = (),
        integer="auto",
        relations: Sequence = (),
        names: Optional[Sequence[str]] = None,
        margin: float = 0.0,
        monotone=None,
    ) -> "FeatureSpace":
        """A FeatureSpace with bounds from data (min/max per column, widened by `margin` × range).

        Args:
            x: `(records, features)` array (a pandas DataFrame's columns become `names`).
            immutable: features (indices or names) the attacker cannot change.
            categorical: one-hot groups (indices or names).
            integer: `"auto"` (columns whose values are all integers), or a bool mask.
            relations: constraints (see `FeatureSpace`).
            names: feature names.
            margin: widen each finite range by this fraction on both sides.
            monotone: per-feature directions relative to the clean record (see
                `FeatureSpace`), e.g. `{"packets": "increase"}`.
        """
        if names is None and hasattr(x, "columns"):
            names = [str(c) for c in x.columns]
        if hasattr(x, "columns") and hasattr(x, "dtypes"):  # a DataFrame: a text column is named, not cast
            for column, dtype in zip(x.columns, x.dtypes):
                if getattr(dtype, "kind", "O") not in "biuf":  # numpy's and pandas' own (nullable) dtypes
                    raise TypeError(
                        f"`x` column {str(column)!r} has dtype {dtype}: a FeatureSpace holds numbers. One-hot "
                        "encode a categorical column (e.g. pandas.get_dummies) and pass its columns as a group "
                        "in `categorical`.")
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"`x` must be a (records, features) table, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            i, j = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(f"`x` has a NaN or infinite value (record {i}, feature {j}).")
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        if margin:
            width = hi - lo
            lo, hi = lo - margin * width, hi + margin * width
        if isinstance(integer, str):
            if integer != "auto":
                raise ValueError(f"`integer` must be 'auto' or a bool mask, got {integer!r}.")
            integer = np.all(arr == np.round(arr), axis=0)
            lo, hi = np.where(integer, np.floor(lo), lo), np.where(integer, np.ceil(hi), hi)
        n = arr.shape[1]
        space = cls(lower=lo, upper=hi, names=names, n_features=n)  # resolves names for the index lists
        frozen = np.zeros(n, bool)
        frozen[space._indices("immutable", list(immutable))] = True
        groups = [space._indices(f"categorical[{g}]", grp) for g, grp in enumerate(categorical)]
        for grp in groups:
            lo[grp], hi[grp] = 0.0, 1.0
        return cls(lower=lo, upper=hi, mutable=~frozen, integer=integer, categorical=groups,
                   relations=relations, names=names, n_features=n, monotone=monotone)

    def get_config(self) -> dict:
        return {
            "lower": [float(v) for v in self.lower],
            "upper": [float(v) for v in self.upper],
            "mutable": [bool(v) for v in self.mutable],
            "integer": [bool(v) for v in self.integer],
            "monotone": [int(v) for v in self.monotone],
            "categorical": [list(g) for g in self.categorical],
            "relations": [keras.saving.serialize_keras_object(r) for r in self.relations],
            "scale": [float(v) for v in self.scale],
            "names": self.names,
            "n_features": self.n_features,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (f"keras_adv.domains.FeatureSpace(n_features={self.n_features}, mutable={int(self.mutable.sum())}, "
                f"integer={int(self.integer.sum())}, categorical={len(self.categorical)} groups, "
                f"relations={len(self.relations)})")


def _first_line(e):
    line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return line if line.endswith(".") else line + "."


def _scatter_matrix(idx, n):
    """The `(len(idx), n)` 0/1 matrix that places `len(idx)` columns at positions `idx` of `n`."""
    idx = list(idx)
    scatter = np.zeros((len(idx), n), np.float32)
    scatter[np.arange(len(idx)), idx] = 1.0
    return scatter


def _set_columns(x, idx, values, n):
    """`x` with columns `idx` replaced by `values` (batch, len(idx)), graph-safe."""
    idx = list(idx)
    keep = np.ones(n, np.float32)
    keep[idx] = 0.0
    s = tf.constant(_scatter_matrix(idx, n), x.dtype)
    return x * tf.constant(keep, x.dtype) + tf.matmul(values, s)
