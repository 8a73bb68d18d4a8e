"""Threat-model norms as objects.

Each norm knows how to turn a gradient into its steepest-ascent direction, how
to project a perturbation back onto its ε-ball, how to draw a random start
inside the ball and how to measure per-example distances. Attacks compose a
norm with a step rule; no attack switches on norm names itself.

All operations are per example: every axis but the first (the batch) is
treated as one flat vector.
"""

from __future__ import annotations

import math
from typing import Union

import keras
import tensorflow as tf

from keras_adv.utils.config import Configurable

__all__ = ["Norm", "Linf", "L2", "L1", "get"]

_TINY = 1e-12


def _flat_reduce(fn, x):
    """Reduces every axis but the batch axis, keeping dims for broadcasting."""
    axes = list(range(1, len(x.shape)))
    return fn(x, axis=axes, keepdims=True)


def _per_example(x):
    return tf.reshape(x, [tf.shape(x)[0], -1])


class Norm(Configurable):
    """Base class of an Lp threat model.

    Subclasses implement `normalize`, `project`, `random_start` and `norm`
    (`distance` defaults to `norm(a − b)`), set a unique `name`, and are
    serializable like Keras objects: a custom norm defines `get_config` (its
    constructor arguments) and is registered with
    `@keras.saving.register_keras_serializable(package=...)`, so attacks
    using it survive `model.save` / `keras.models.load_model`.
    """

    name: str = ""
    p: float = 0.0

    def normalize(self, g: tf.Tensor) -> tf.Tensor:
        """Steepest-ascent direction of unit norm for gradient `g`."""
        raise NotImplementedError

    def project(self, delta: tf.Tensor, epsilon) -> tf.Tensor:
        """Projects `delta` onto the ball of radius `epsilon` (per example)."""
        raise NotImplementedError

    def ascent_direction(self, g: tf.Tensor, x: tf.Tensor, bounds, step_size=None) -> tf.Tensor:
        """The step direction at `x` inside the box `bounds`; by default `normalize(g)`.

        `step_size` (the step's length in this norm, when the caller knows it)
        lets a norm whose steps are sparse move enough coordinates for the
        step to fit inside the box; the default ignores it.
        """
        return self.normalize(g)

    def random_start(self, shape, epsilon, seed, dtype=tf.float32) -> tf.Tensor:
        """A random perturbation inside the ball. `seed` is a stateless seed (2,)."""
        raise NotImplementedError

    def distance(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """Per-example distance ‖a − b‖, shape (batch,)."""
        return self.norm(a - b)

    def norm(self, x: tf.Tensor) -> tf.Tensor:
        """Per-example norm of `x`, shape (batch,)."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"keras_adv.norms.{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_adv")
class Linf(Norm):
    """The L∞ norm: max absolute coordinate. Steepest ascent is `sign(g)`."""

    name = "linf"
    p = math.inf

    def normalize(self, g):
        return tf.sign(g)

    def project(self, delta, epsilon):
        epsilon = tf.cast(epsilon, delta.dtype)
        return tf.clip_by_value(delta, -epsilon, epsilon)

    def random_start(self, shape, epsilon, seed, dtype=tf.float32):
        epsilon = tf.cast(epsilon, dtype)
        return tf.random.stateless_uniform(shape, seed, -1.0, 1.0, dtype=dtype) * epsilon

    def norm(self, x):
        return tf.reduce_max(tf.abs(_per_example(x)), axis=1)


@keras.saving.register_keras_serializable(package="keras_adv")
class L2(Norm):
    """The L2 (Euclidean) norm. Steepest ascent is `g / ‖g‖₂`."""

    name = "l2"
    p = 2.0

    def normalize(self, g):
        n = tf.sqrt(_flat_reduce(tf.reduce_sum, tf.square(g)))
        return g / tf.maximum(n, _TINY)

    def project(self, delta, epsilon):
        epsilon = tf.cast(epsilon, delta.dtype)
        n = tf.sqrt(_flat_reduce(tf.reduce_sum, tf.square(delta)))
        factor = tf.minimum(1.0, epsilon / tf.maximum(n, _TINY))
        return delta * factor

    def random_start(self, shape, epsilon, seed, dtype=tf.float32):
        # Uniform in the L2 ball: a Gaussian direction, radius ∝ U^(1/d).
        epsilon = tf.cast(epsilon, dtype)
        s1, s2 = tf.unstack(tf.random.split(seed, 2))
        direction = self.normalize(tf.random.stateless_normal(shape, s1, dtype=dtype))
        d = tf.cast(tf.reduce_prod(shape[1:]), dtype)
        u = tf.random.stateless_uniform(
            tf.concat([shape[:1], tf.ones_like(shape[1:])], 0), s2, dtype=dtype
        )
        return direction * epsilon * tf.pow(u, 1.0 / d)

    def norm(self, x):
        return tf.sqrt(tf.reduce_sum(tf.square(_per_example(x)), axis=1))


@keras.saving.register_keras_serializable(package="keras_adv")
class L1(Norm):
    """The L1 norm.

    The steepest-ascent step is sparse (Tramèr & Boneh 2019, "SLIDE"): it
    moves only the coordinates whose absolute gradient is in the top
    `sparsity` quantile, by `sign(g)` spread evenly so the step has unit L1
    norm. Projection is the exact Euclidean projection onto the L1 ball
    (Duchi et al. 2008, sort-based).

    Args:
        sparsity: fraction of coordinates *not* moved by a step (0.99 moves
            the top 1% of coordinates by gradient magnitude).
    """

    name = "l1"
    p = 1.0

    def __init__(self, sparsity: float = 0.99):
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"`sparsity` must be in [0, 1), got {sparsity}.")
        self.sparsity = float(sparsity)

    def _num_moved(self, d):
        """How many of `d` coordinates a sparse step moves: the top `1 − sparsity`, at least one."""
        return tf.maximum(1, tf.cast(tf.math.ceil((1.0 - self.sparsity) * tf.cast(d, tf.float32)), tf.int32))

    def normalize(self, g):
        flat = _per_example(g)
        d = tf.shape(flat)[1]
        k = self._num_moved(d)
        absg = tf.abs(flat)
        kth = tf.math.top_k(absg, k=k, sorted=True).values[:, -1:]
        mask = tf.cast(absg >= kth, flat.dtype)
        count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        step = tf.sign(flat) * mask / count
        return tf.reshape(step, tf.shape(g))

    def ascent_direction(self, g, x, bounds, step_size=None):
        # Sparse steps move few coordinates: never spend them on coordinates
        # already at a bound and pushed outwards (clipping would undo the step).
        lo, hi = bounds
        stuck = ((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0))
        g = tf.where(stuck, tf.zeros_like(g), g)
        if step_size is None:
            return self.normalize(g)
        # A coordinate can only move as far as its bound (its "room"). The
        # step moves the top-|g| coordinates, at least as many as the sparsity
        # asks and as many as it takes for their room to hold the step's
        # length s; each moves by min(room, t), the level t that spends s
        # (water-filling: t = s/k, the plain sparse step, when every room
        # holds s/k). Without this, one step with ε above the box width on a
        # small image (k = 1 at sparsity 0.99 on 8×8) moved a single pixel and
        # larger ε changed nothing.
        flat = _per_example(g)
        absg = tf.abs(flat)
        room = _per_example(tf.maximum(tf.where(g > 0, hi - x, x - lo), 0.0))
        d = tf.shape(flat)[1]
        s = tf.cast(step_size, flat.dtype)
        k_sparse = self._num_moved(d)
        order = tf.argsort(absg, axis=1, direction="DESCENDING", stable=True)
        filled = tf.cumsum(tf.gather(room, order, batch_dims=1), axis=1)
        k_room = 1 + tf.reduce_sum(tf.cast(filled < s, tf.int32), axis=1, keepdims=True)
        k = tf.minimum(tf.maximum(k_room, k_sparse), d)
        kth = tf.gather(tf.gather(absg, order, batch_dims=1), k - 1, batch_dims=1)
        selected = (absg >= kth) & (absg > 0)
        count = tf.reduce_sum(tf.cast(selected, tf.int32), axis=1, keepdims=True)
        # The level t: rooms of the selected coordinates in ascending order r_0 ≤ r_1 ≤ ...;
        # t = (s − r_0 − … − r_{j−1}) / (count − j) at the first j where that share fits under r_j.
        rooms = tf.sort(tf.where(selected, room, tf.constant(float("inf"), flat.dtype)), axis=1)
        finite = tf.where(tf.math.is_finite(rooms), rooms, 0.0)
        before = tf.cumsum(finite, axis=1, exclusive=True)
        j = tf.range(d)[tf.newaxis, :]
        share = (s - before) / tf.cast(tf.maximum(count - j, 1), flat.dtype)
        fits = (j < count) & (share <= rooms)
        first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)[:, tf.newaxis]
        largest = tf.reduce_max(finite, axis=1, keepdims=True)  # no level fits: every room is used up
        level = tf.where(tf.reduce_any(fits, axis=1, keepdims=True),
                         tf.gather(share, first, batch_dims=1), largest)
        moves = tf.where(selected, tf.minimum(room, level), 0.0)
        return tf.reshape(tf.sign(flat) * moves / tf.maximum(s, _TINY), tf.shape(g))

    def project(self, delta, epsilon):
        epsilon = tf.cast(epsilon, delta.dtype)
        flat = _per_example(delta)
        absd = tf.abs(flat)
        inside = tf.reduce_sum(absd, axis=1, keepdims=True) <= epsilon
        mu = tf.sort(absd, axis=1, direction="DESCENDING")
        cumsum = tf.cumsum(mu, axis=1)
        d = tf.shape(flat)[1]
        idx = tf.cast(tf.range(1, d + 1), flat.dtype)[tf.newaxis, :]
        cond = mu - (cumsum - epsilon) / idx > 0
        rho = tf.reduce_max(tf.where(cond, tf.cast(idx, tf.int32), 0), axis=1, keepdims=True)
        rho = tf.maximum(rho, 1)
        theta = (tf.gather(cumsum, rho - 1, batch_dims=1) - epsilon) / tf.cast(rho, flat.dtype)
        projected = tf.sign(flat) * tf.maximum(absd - theta, 0.0)
        out = tf.where(inside, flat, projected)
        return tf.reshape(out, tf.shape(delta))

    def random_start(self, shape, epsilon, seed, dtype=tf.float32):
        # Uniform in the L1 ball: Laplace direction normalised, radius ∝ U^(1/d).
        epsilon = tf.cast(epsilon, dtype)
        s1, s2, s3 = tf.unstack(tf.random.split(seed, 3))
        e = -tf.math.log(tf.random.stateless_uniform(shape, s1, minval=_TINY, maxval=1.0, dtype=dtype))
        signs = tf.sign(tf.random.stateless_uniform(shape, s2, -1.0, 1.0, dtype=dtype))
        direction = e * signs
        direction = direction / tf.maximum(_flat_reduce(tf.reduce_sum, tf.abs(direction)), _TINY)
        d = tf.cast(tf.reduce_prod(shape[1:]), dtype)
        u = tf.random.stateless_uniform(
            tf.concat([shape[:1], tf.ones_like(shape[1:])], 0), s3, dtype=dtype
        )
        return direction * epsilon * tf.pow(u, 1.0 / d)

    def norm(self, x):
        return tf.reduce_sum(tf.abs(_per_example(x)), axis=1)

    def get_config(self):
        return {"sparsity": self.sparsity}


_ALIASES = {
    "linf": Linf, "inf": Linf, "l_inf": Linf, "infinity": Linf,
    "l2": L2, "2": L2,
    "l1": L1, "1": L1,
}

NormLike = Union[str, int, float, dict, Norm]


def get(norm: NormLike) -> Norm:
    """Returns a `Norm`.

    Accepts a `Norm`, a name (`"linf"`, `"l2"`, `"l1"`), a number (`np.inf`,
    2, 1), a serialized norm (`keras.saving.serialize_keras_object(norm)`,
    custom registered norms included) or a dict `{"name": "l1", **arguments}`.
    Unknown names and classes are refused.
    """
    if isinstance(norm, Norm):
        return norm
    if isinstance(norm, dict):
        return _from_dict(norm)
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        key = "linf" if math.isinf(norm) else str(int(norm)) if float(norm).is_integer() else None
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        key = None
    if key not in _ALIASES:
        raise ValueError(
            f"Unknown `norm`: {norm!r}. Expected one of 'linf', 'l2', 'l1' "
            "(or np.inf, 2, 1, or a keras_adv.norms.Norm instance)."
        )
    return _ALIASES[key]()


def _from_dict(config: dict) -> Norm:
    if "class_name" in config:
        try:
            obj = keras.saving.deserialize_keras_object(config)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"Unknown `norm` {config.get('class_name')!r}: not a registered keras_adv.norms.Norm "
                f"(register custom norms with keras.saving.register_keras_serializable). {e}"
            ) from None
        if not isinstance(obj, Norm):
            raise ValueError(f"`norm` config does not describe a keras_adv.norms.Norm: {config!r}.")
        return obj
    if "name" not in config:
        raise ValueError(
            f"`norm` given as a dict needs a 'name' ('linf', 'l2', 'l1') or be a serialized norm, got {config!r}."
        )
    base = get(config["name"]) if isinstance(config["name"], str) else None
    if base is None:
        raise ValueError(f"Unknown `norm`: {config!r}.")
    args = {k: v for k, v in config.items() if k != "name"}
    try:
        return type(base)(**args)
    except TypeError:
        raise ValueError(
            f"`norm` {config['name']!r} does not take the arguments {sorted(args)}, got {config!r}."
        ) from None
