"""The independent constraint checker: does a batch of records satisfy a `FeatureSpace`?

This module reads only what a `FeatureSpace` *declares* (bounds, mutable,
monotone and integer masks, one-hot groups, relations, budget scale) and tests it in numpy.
It shares no code with the attacks' repair/projection step, so it can vouch
for their output: every tabular attack's results are checked with it in the
tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np

__all__ = ["CheckResult", "check_examples"]

_KINDS = ("shape", "finite", "bounds", "immutable", "monotone", "integer", "categorical", "relations", "budget")


@dataclasses.dataclass
class CheckResult:
    """Per-example validity of records against a feature space.

    Attributes:
        valid: `(batch,)` bool, every check passed.
        failures: `{check: (batch,) bool}`, True where that check failed;
            checks are "finite", "bounds", "immutable", "monotone", "integer",
            "categorical", "relations", "budget".
        messages: one human-readable line per failed check (first offending
            example and feature named).
    """

    valid: np.ndarray
    failures: Dict[str, np.ndarray]
    messages: List[str]

    @property
    def valid_fraction(self) -> float:
        return float(np.mean(self.valid)) if self.valid.size else 1.0

    def summary(self) -> Dict[str, int]:
        """`{check: number of failing examples}` plus `"valid"` and `"total"`."""
        out = {k: int(v.sum()) for k, v in self.failures.items()}
        out.update(valid=int(self.valid.sum()), total=int(self.valid.size))
        return out


def check_examples(space, x_adv, x=None, *, epsilon: Optional[float] = None, norm: str = "linf",
                   argument: str = "x") -> CheckResult:
    """Checks records `x_adv` against `space` (and, given `x`, immutability and the budget).

    Args:
        space: a `keras_adv.domains.FeatureSpace`.
        x_adv: `(batch, features)` records to check.
        x: the original records; with it, immutable features must be
            unchanged, monotone features must not have moved the forbidden
            way (`FeatureSpace(monotone=...)`), and with `epsilon` the scaled distance over the
            budgeted features must be ≤ ε in `norm`.
        epsilon: the budget (None: not checked).
        norm: `"linf"`, `"l2"` or `"l1"` (a `keras_adv.norms.Norm` works too).
        argument: the argument name used in messages.

    Returns:
        A `CheckResult`.
    """
    xa = np.asarray(x_adv, dtype=np.float32)
    n = space.n_features
    if xa.ndim != 2 or xa.shape[1] != n:
        raise ValueError(
            f"`{argument}` must have shape (batch, {n}) to match the FeatureSpace "
            f"({n} features: `lower`/`upper`/`names`), got shape {xa.shape}."
        )
    names = space.feature_names
    batch = xa.shape[0]
    failures = {}
    messages = []

    def record(kind, bad_matrix, describe):
        bad = bad_matrix if bad_matrix.ndim == 1 else bad_matrix.any(axis=1)
        failures[kind] = bad
        if bad.any():
            messages.append(describe(bad_matrix))

    def first(bad_matrix):
        i, j = np.argwhere(bad_matrix)[0]
        return int(i), int(j)

    finite = np.isfinite(xa)
    record("finite", ~finite, lambda m: "`{a}` has a NaN or infinite value: feature {f} of example {i}.".format(
        a=argument, f=_fname(names, first(m)[1]), i=first(m)[0]))

    lo = np.asarray(space.lower, np.float32)
    hi = np.asarray(space.upper, np.float32)
    below = finite & (xa < lo)
    above = finite & (xa > hi)

    def bounds_msg(_):
        i, j = first(below | above)
        side, limit = ("lower", lo[j]) if below[i, j] else ("upper", hi[j])
        rel = "<" if side == "lower" else ">"
        return (f"`{argument}` lies outside the FeatureSpace: feature {_fname(names, j)} of example {i} "
                f"is {xa[i, j]:.6g} {rel} `{side}`[{j}] = {limit:.6g}.")
    record("bounds", below | above, bounds_msg)

    if x is not None:
        x0 = np.asarray(x, dtype=np.float32)
        if x0.shape != xa.shape:
            raise ValueError(f"The original records must have the shape of `{argument}` {xa.shape}, got {x0.shape}.")
        frozen = ~np.asarray(space.mutable, bool)
        changed = (xa != x0) & frozen[None, :]
        record("immutable", changed, lambda m: (
            f"`{argument}` changes an immutable feature: {_fname(names, first(m)[1])} of example {first(m)[0]} "
            f"({x0[first(m)]:.6g} -> {xa[first(m)]:.6g}); it is not in `mutable`."))
        direction = np.asarray(getattr(space, "monotone", np.zeros(n)), np.float64)
        moved = (xa.astype(np.float64) - x0.astype(np.float64)) * direction[None, :]
        wrong = finite & (moved < 0)

        def monotone_msg(m):
            i, j = first(m)
            way, verb = ("increase", "decreases") if direction[j] > 0 else ("decrease", "increases")
            return (f"`{argument}` {verb} feature {_fname(names, j)} of example {i} ({x0[i, j]:.6g} -> "
                    f"{xa[i, j]:.6g}), which `monotone` says may only {way}.")
        record("monotone", wrong, monotone_msg)
    else:
        failures["immutable"] = np.zeros(batch, bool)
        failures["monotone"] = np.zeros(batch, bool)

    integer = np.asarray(space.integer, bool)
    not_int = finite & integer[None, :] & (xa != np.round(xa))
    record("integer", not_int, lambda m: (
        f"`{argument}` has a non-integer value {xa[first(m)]:.6g} in integer feature "
        f"{_fname(names, first(m)[1])} (example {first(m)[0]}); see `integer`."))

    cat_bad = np.zeros(batch, bool)
    cat_msg = None
    for g, group in enumerate(space.categorical):
        v = xa[:, group]
        bad = ~(np.all((v == 0) | (v == 1), axis=1) & (v.sum(axis=1) == 1))
        if bad.any() and cat_msg is None:
            i = int(np.argmax(bad))
            cat_msg = (f"`{argument}` breaks one-hot group `categorical`[{g}] "
                       f"({', '.join(_fname(names, j) for j in group)}) in example {i}: values {v[i].tolist()} "
                       "must be 0/1 with exactly one 1.")
        cat_bad |= bad
    failures["categorical"] = cat_bad
    if cat_msg:
        messages.append(cat_msg)

    rel_bad = np.zeros(batch, bool)
    rel_msg = None
    if space.relations and batch:
        xs = np.where(finite, xa, 0.0).astype(np.float32)
        for r, rel in enumerate(space.relations):
            v = np.asarray(rel.values(xs))
            v = v.reshape(batch, -1)
            bad = (v > rel.tolerance) if rel.kind == "<=" else (np.abs(v) > rel.tolerance)
            bad = bad.any(axis=1) | ~np.isfinite(v).all(axis=1)
            if bad.any() and rel_msg is None:
                i = int(np.argmax(bad))
                rel_msg = (f"`{argument}` violates relation `relations`[{r}] {rel.name!r} ({rel.kind} 0 within "
                           f"{rel.tolerance:g}) in example {i}: value {v[i].tolist()}.")
            rel_bad |= bad
    failures["relations"] = rel_bad
    if rel_msg:
        messages.append(rel_msg)

    if x is not None and epsilon is not None:
        mask = np.asarray(space.budget_mask, bool)
        scale = np.asarray(space.scale, np.float32)
        d = ((xa - np.asarray(x, np.float32)) / scale)[:, mask].astype(np.float64)
        name = getattr(norm, "name", norm)
        if name == "linf":
            dist = np.abs(d).max(axis=1) if d.shape[1] else np.zeros(batch)
        elif name == "l2":
            dist = np.sqrt((d ** 2).sum(axis=1))
        elif name == "l1":
            dist = np.abs(d).sum(axis=1)
        else:
            raise ValueError(f"`norm` must be 'linf', 'l2' or 'l1', got {norm!r}.")
        over = dist > float(epsilon) * (1 + 1e-5) + 1e-6
        failures["budget"] = over
        if over.any():
            i = int(np.argmax(over))
            messages.append(f"`{argument}` exceeds the budget in example {i}: scaled {name} distance "
                            f"{dist[i]:.6g} > epsilon {epsilon:g}.")
    else:
        failures["budget"] = np.zeros(batch, bool)

    valid = ~np.any(np.stack([failures[k] for k in _KINDS if k in failures]), axis=0) if batch else np.ones(0, bool)
    return CheckResult(valid=valid, failures=failures, messages=messages)


def _fname(names, j):
    return f"{names[j]!r} (index {j})"
