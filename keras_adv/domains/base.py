"""Input domains: what an attacker may change, as an object.

Every attack holds a `Domain` (`attack.domain`). The attack base class
delegates to it the two things that depend on the kind of input:

* checking the clean inputs (`Domain.validate`): finite and inside the domain;
* repairing every candidate (`Domain.project`): after the ε-ball projection,
  the result is put back into the domain (clipping for a box; freezing
  immutable features, rounding integers, re-projecting one-hot groups for a
  tabular feature space).

`Box` is the default and today's image case: scalar `bounds=(0, 1)` are
`Box(0.0, 1.0)`. It also takes per-feature arrays (±inf allowed), which is
what a tabular feature space builds on.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from keras_adv.utils.config import Configurable
from keras_adv.utils.validation import check_bounds

__all__ = ["Domain", "Box", "get"]


class Domain(Configurable):
    """Base class of input domains: the set of inputs an attacker may produce.

    A domain is a serializable, stateless description. Attacks call its hooks
    on tensors, eagerly or inside `tf.function`, so every hook must be
    graph-safe (TensorFlow ops on the given tensors; Python work only on the
    domain's own constants).

    The interface a subclass implements (the attack base class, the gradient
    loop and `AdversarialModel` rely on exactly these):

    * `validate(x) -> x`: checks clean inputs. Eagerly it raises a
      `ValueError` that names `x` and the violated constraint (NaN/inf
      values, a feature outside its range, ...). Inside a graph it returns
      `x` guarded by `tf.debugging.Assert` (one fused check).
    * `project(x_adv, x) -> x_adv`: returns a point of the domain near
      `x_adv` (clip, repair). `x` is the clean input, for features the
      attacker may not change. The attack base class calls it *after* the
      ε-ball projection; for the budget guarantee
      (‖x_adv − x‖ ≤ ε) it must not move any coordinate farther from `x`
      than `x_adv` was (true of clipping, of freezing a feature to `x`, and
      of rounding an integer feature towards `x`). A repair that can break
      this says so in its docstring.
    * `restrict(delta, x) -> delta`: restricts a perturbation direction (a
      gradient step, a random start) to the features the attacker may move;
      the default keeps `delta` unchanged. Attacks call it before adding a
      step, so no budget is wasted on immutable features.
    * `random_start(x, delta) -> x0`: the starting point of a random start
      from the clean `x` and a random `delta` drawn in the ε-ball; the default
      is `project(x + restrict(delta, x), x)`.
    * `contains(x) -> (batch,) bool`: per-example membership (used by tests
      and checkers; need not re-check finiteness of the bounds themselves).
    * `lower`, `upper`: per-feature limits broadcastable to one example
      (`x.shape[1:]`), or scalars; ±inf allowed. `bounds` is `(lower, upper)`.
    * `get_config()` / `from_config(config)`: a JSON-able config; subclasses
      are registered with
      `@keras.saving.register_keras_serializable(package="keras_adv")`
      (or their own package) so attacks holding them survive
      `model.save` / `keras.models.load_model`.
    """

    # ------------------------------------------------------------ limits
    @property
    def lower(self):
        raise NotImplementedError

    @property
    def upper(self):
        raise NotImplementedError

    @property
    def bounds(self) -> Tuple[Any, Any]:
        """`(lower, upper)`: scalars for a scalar box, else arrays."""
        return (self.lower, self.upper)

    @property
    def is_scalar(self) -> bool:
        """True when the limits are the same for every feature."""
        return np.ndim(self.lower) == 0 and np.ndim(self.upper) == 0

    @property
    def width(self) -> float:
        """The largest `upper − lower` over the features (inf when unbounded)."""
        return float(np.max(np.asarray(self.upper, np.float64) - np.asarray(self.lower, np.float64)))

    # ------------------------------------------------------------- hooks
    def validate(self, x):
        raise NotImplementedError

    def project(self, x_adv, x):
        raise NotImplementedError

    def restrict(self, delta, x):
        return delta

    def random_start(self, x, delta):
        return self.project(x + self.restrict(delta, x), x)

    def contains(self, x):
        raise NotImplementedError



def _as_limit(name: str, value) -> Union[float, np.ndarray]:
    """A scalar float or a float32 array (±inf allowed, NaN refused)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a number or an array of numbers, got {value!r}.")
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf"):
        value = float(value)
    if isinstance(value, (numbers.Real, np.integer, np.floating)):
        value = float(value)
        if np.isnan(value):
            raise ValueError(f"`{name}` must not be NaN.")
        return value
    try:
        arr = np.asarray(_decode(value), dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number or an array of numbers, got {value!r}.") from None
    if arr.ndim == 0:
        return _as_limit(name, float(arr))
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must not contain NaN (feature {_first(np.isnan(arr))}).")
    return arr.astype(np.float32)


def _first(mask: np.ndarray) -> Any:
    idx = np.argwhere(mask)[0]
    return int(idx[0]) if len(idx) == 1 else tuple(int(i) for i in idx)


def _encode(value):
    """JSON-safe config value: ±inf written as the strings "inf" / "-inf"."""
    if isinstance(value, np.ndarray):
        return [_encode(v) for v in value.tolist()] if value.ndim else _encode(float(value))
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, float) and np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, str):
        if value.strip().lower() in ("inf", "+inf", "-inf"):
            return float(value)
        raise ValueError(f"not a number: {value!r}")
    return value


@keras.saving.register_keras_serializable(package="keras_adv")
class Box(Domain):
    """A box `lower ≤ x ≤ upper`: the default domain of every attack.

    `Box(0.0, 1.0)` is the image case (`bounds=(0.0, 1.0)`). `lower` and
    `upper` may also be arrays broadcastable to one example's shape
    (`x.shape[1:]`), one limit per feature, with `-inf`/`inf` for an unbounded
    side. Inputs must be finite and inside the box; results are clipped to it.

    Example:

    ```python
    keras_adv.domains.Box(0.0, 1.0)                       # images in [0, 1]
    keras_adv.domains.Box(lower=[0, -np.inf, 0], upper=[1, np.inf, 100])  # 3 features
    attack = keras_adv.attacks.PGD(epsilon=0.1, domain=keras_adv.domains.Box(-1.0, 1.0))
    ```

    Args:
        lower: the smallest valid value (a scalar, or one per feature).
        upper: the largest valid value (a scalar, or one per feature).
    """

    def __init__(self, lower: Any = 0.0, upper: Any = 1.0):
        lo = _as_limit("lower", lower)
        hi = _as_limit("upper", upper)
        if np.ndim(lo) == 0 and np.ndim(hi) == 0:
            if np.isinf(lo) or np.isinf(hi):
                if not lo < hi:
                    raise ValueError(f"`bounds` must satisfy min < max, got {(lo, hi)!r} (reversed or empty).")
            else:
                lo, hi = check_bounds((lo, hi))
        else:
            try:
                shape = np.broadcast_shapes(np.shape(lo), np.shape(hi))
            except ValueError:
                raise ValueError(
                    f"`lower` (shape {np.shape(lo)}) and `upper` (shape {np.shape(hi)}) must have "
                    "broadcastable shapes."
                ) from None
            reversed_ = np.broadcast_to(lo, shape) > np.broadcast_to(hi, shape)
            if reversed_.any():
                i = _first(reversed_)
                raise ValueError(
                    f"`lower` must be <= `upper` for every feature; feature {i} has "
                    f"lower={np.broadcast_to(lo, shape)[i]} > upper={np.broadcast_to(hi, shape)[i]} (reversed)."
                )
        self._lower = lo
        self._upper = hi

    @property
    def lower(self):
        return self._lower

    @property
    def upper(self):
        return self._upper

    def _describe(self) -> str:
        if self.is_scalar:
            return f"bounds=({self.lower}, {self.upper})"
        return "the per-feature bounds of the domain"

    def _limits(self, x):
        """`lower`, `upper` as tensors of `x`'s dtype; checks the per-feature shape."""
        lo, hi = self.lower, self.upper
        if not self.is_scalar and x.shape.rank is not None:
            feat = tuple(x.shape[1:])
            for name, v in (("lower", lo), ("upper", hi)):
                vs = np.shape(v)
                ok = len(vs) <= len(feat) and all(
                    a == 1 or b is None or a == b for a, b in zip(vs[::-1], feat[::-1]))
                if not ok:
                    raise ValueError(
                        f"The domain's `{name}` has shape {vs}, which does not broadcast to one "
                        f"example of `x` (shape {feat}); give one limit per feature."
                    )
        return tf.cast(lo, x.dtype), tf.cast(hi, x.dtype)

    def validate(self, x):
        msg_bounds = (
            f"`x` must lie inside {self._describe()}; rescale the inputs "
            "or pass the attack the bounds your data uses"
        )
        if tf.executing_eagerly():
            if not self.is_scalar:
                self._limits(x)  # the per-feature shape check
            xv = np.asarray(x)  # the array protocol: a read-only view of the tensor's buffer, no copy
            if self.is_scalar and xv.size and np.isfinite(self.lower) and np.isfinite(self.upper):
                # Fast path (two passes): NaN makes min/max NaN and ±inf lies outside finite bounds,
                # so passing both comparisons means finite and inside; otherwise diagnose below.
                if xv.min() >= self.lower and xv.max() <= self.upper:
                    return x
            if not np.all(np.isfinite(xv)):
                raise ValueError("`x` contains NaN or infinite values.")
            if xv.size:
                if self.is_scalar:
                    if xv.min() < self.lower or xv.max() > self.upper:
                        raise ValueError(f"{msg_bounds} (got min={xv.min():.4g}, max={xv.max():.4g}).")
                else:
                    lo = np.broadcast_to(self.lower, xv.shape[1:])
                    hi = np.broadcast_to(self.upper, xv.shape[1:])
                    bad = ((xv < lo) | (xv > hi)).any(axis=0)
                    if bad.any():
                        i = _first(bad)
                        col = xv[(slice(None),) + (i if isinstance(i, tuple) else (i,))]
                        raise ValueError(
                            f"{msg_bounds}: feature {i} must lie in [{lo[i]}, {hi[i]}] "
                            f"(got min={col.min():.4g}, max={col.max():.4g})."
                        )
            return x
        # NaN fails both comparisons and ±inf lies outside finite bounds, so one
        # elementwise test covers finiteness and bounds (plus an explicit
        # finiteness test when a side of the box is unbounded).
        # Finiteness first, with its own message (a NaN pixel is not data on the wrong scale), then the bounds.
        lo_t, hi_t = self._limits(x)
        finite = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)),
                                     ["`x` contains NaN or infinite values."])
        with tf.control_dependencies([finite]):
            inside = tf.reduce_all((x >= lo_t) & (x <= hi_t))
            check = tf.debugging.Assert(inside, [f"{msg_bounds}; min/max of the batch:", tf.reduce_min(x),
                                                 tf.reduce_max(x)])
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def project(self, x_adv, x=None):
        lo, hi = self._limits(x_adv)
        return tf.minimum(tf.maximum(x_adv, lo), hi)

    def contains(self, x):
        x = tf.convert_to_tensor(x)
        lo, hi = self._limits(x)
        ok = (x >= lo) & (x <= hi) & tf.math.is_finite(x)
        return tf.reduce_all(tf.reshape(ok, [tf.shape(x)[0], -1]), axis=1)

    def get_config(self):
        return {"lower": _encode(self.lower), "upper": _encode(self.upper)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(lower=_decode(config.get("lower", 0.0)), upper=_decode(config.get("upper", 1.0)))

    def __repr__(self):
        if self.is_scalar:
            return f"keras_adv.domains.Box({self.lower}, {self.upper})"
        return f"keras_adv.domains.Box(lower=<{np.shape(self.lower)}>, upper=<{np.shape(self.upper)}>)"


def get(identifier) -> Optional[Domain]:
    """Returns a `Domain` from a `Domain`, a serialized config dict, or a `(min, max)` pair."""
    if identifier is None or isinstance(identifier, Domain):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            raise ValueError(
                "`domain` given as a dict must be a serialized domain "
                "(keras.saving.serialize_keras_object(domain)), got "
                f"{identifier!r}."
            )
        obj = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(obj, Domain):
            raise TypeError(f"`domain` config did not give a keras_adv.domains.Domain: {identifier!r}.")
        return obj
    if isinstance(identifier, (tuple, list)) and len(identifier) == 2:
        return Box(*identifier)
    raise TypeError(
        "`domain` must be a keras_adv.domains.Domain (e.g. keras_adv.domains.Box(0.0, 1.0)), "
        f"a serialized domain or a (min, max) pair; got {identifier!r}."
    )
