"""Spatial (rotation / translation / scaling) attacks."""

from __future__ import annotations

import itertools
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils.validation import check_number
from keras_adv.ops.image import transform_images

__all__ = ["SpatialTransformation"]

_METHODS = ("grid", "random", "first_order")


@keras.saving.register_keras_serializable(package="keras_adv")
class SpatialTransformation(Attack):
    """Spatial transformation attack (Engstrom et al. 2019, "Exploring the
    Landscape of Spatial Robustness").

    Searches rotations in `[−max_rotation, max_rotation]` degrees,
    translations in `[−max_translation, max_translation]` pixels along each
    axis and scale factors in `[1 − max_scale, 1 + max_scale]`, applied with
    the differentiable bilinear sampler `keras_adv.layers.SpatialTransform`
    (pixels from outside the image are `fill_value`). Per example the worst
    transformation is kept: a misclassified one first, else the one of highest
    loss.

    * `method="grid"`: exhaustive search over `n_rotations × n_translations² ×
      n_scales` evenly spaced values (the identity is included when counts are
      odd), evaluated `grid_batch_size` grid points at a time.
    * `method="random"`: worst of `k` transformations drawn uniformly per example.
    * `method="first_order"`: `steps` signed-gradient ascent steps on the
      transformation parameters through the sampler, from the identity.

    Inputs must be images `(batch, height, width, channels)`. With
    `epsilon=None` (the default) the attack is purely spatial. With an
    `epsilon`, each candidate is first projected onto the ε-ball of `norm`
    around the input (as the base class does with the result), so the
    selected worst case is the worst *within* the Lp budget.

    Example:

    ```python
    attack = keras_adv.attacks.SpatialTransformation(
        max_rotation=30.0, max_translation=3.0, n_rotations=31, n_translations=5)
    x_adv = attack(model, x, y)
    ```

    Args:
        max_rotation: largest rotation, degrees.
        max_translation: largest translation, pixels (each axis).
        max_scale: largest relative change of scale (0 = no scaling), < 1.
        method: `"grid"`, `"random"` or `"first_order"`.
        n_rotations, n_translations, n_scales: grid points (≥ 1) of each
            parameter; translations are gridded along both axes.
        grid_batch_size: grid points evaluated per model call (memory vs speed).
        k: number of random draws for `method="random"`.
        steps: gradient steps for `method="first_order"`.
        step_size: step of `"first_order"` as a fraction of each parameter's
            range (default 2.5 / steps).
        fill_value: value of pixels sampled from outside the image.
        epsilon: optional Lp budget on top (None: purely spatial).
        **kwargs: `norm`, `bounds`, `targeted`, `loss`, `seed`, `name`
            (see `keras_adv.attacks.Attack`).
    """

    allows_unbounded = True
    requires_images = True

    def __init__(
        self,
        max_rotation: float = 30.0,
        max_translation: float = 3.0,
        max_scale: float = 0.0,
        *,
        method: str = "grid",
        n_rotations: int = 31,
        n_translations: int = 5,
        n_scales: int = 1,
        grid_batch_size: int = 32,
        k: int = 10,
        steps: int = 10,
        step_size: Optional[float] = None,
        fill_value: float = 0.0,
        epsilon: Optional[float] = None,
        **kwargs,
    ):
        super().__init__(epsilon=epsilon, **kwargs)
        self.max_rotation = check_number("max_rotation", max_rotation, minimum=0.0)
        self.max_translation = check_number("max_translation", max_translation, minimum=0.0)
        self.max_scale = check_number("max_scale", max_scale, minimum=0.0)
        if self.max_scale >= 1.0:
            raise ValueError(f"`max_scale` must be in [0, 1), got {max_scale!r}.")
        if method not in _METHODS:
            raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
        self.method = method
        self.n_rotations = check_number("n_rotations", n_rotations, minimum=1, integer=True)
        self.n_translations = check_number("n_translations", n_translations, minimum=1, integer=True)
        self.n_scales = check_number("n_scales", n_scales, minimum=1, integer=True)
        self.grid_batch_size = check_number("grid_batch_size", grid_batch_size, minimum=1, integer=True)
        self.k = check_number("k", k, minimum=1, integer=True)
        self.steps = check_number("steps", steps, minimum=1, integer=True)
        self.step_size = check_number("step_size", step_size, minimum=0.0, strict=True, allow_none=True)
        self.fill_value = check_number("fill_value", fill_value)

    # --------------------------------------------------------------- grid
    def grid(self) -> np.ndarray:
        """The `(n, 4)` grid of (rotation°, tx, ty, scale) searched by `method="grid"`."""
        def space(limit, n, center=0.0):
            return np.linspace(center - limit, center + limit, n) if n > 1 else np.array([center])

        rot = space(self.max_rotation, self.n_rotations)
        tr = space(self.max_translation, self.n_translations)
        sc = space(self.max_scale, self.n_scales, 1.0)
        return np.array(list(itertools.product(rot, tr, tr, sc)), dtype="float32")

    def _ranges(self, dtype):
        return tf.constant(
            [self.max_rotation, self.max_translation, self.max_translation, self.max_scale], dtype
        )

    # ------------------------------------------------------------ perturb
    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        if x.shape.rank != 4:
            raise ValueError(
                f"{type(self).__name__} needs image inputs of shape (batch, height, width, "
                f"channels); got `x` of shape {x.shape}. Reshape flat inputs to images first."
            )

        def candidate(params):
            cand = transform_images(x, params, self.fill_value)
            return self.enforce_budget(x, cand, epsilon)

        def evaluate(params):
            cand = candidate(params)
            outputs = model(cand, training=False)
            return cand, self.objective(loss_fn, y, outputs), self.is_successful(outputs, y)

        if self.method == "grid":
            return self._grid_search(model, x, y, epsilon, loss_fn)
        if self.method == "random":
            return self._random_search(x, seed, evaluate)
        return self._first_order(x, y, loss_fn, model, candidate, evaluate)

    def _grid_search(self, model, x, y, epsilon, loss_fn):
        grid = self.grid()
        g = len(grid)
        chunk = min(self.grid_batch_size, g)
        n_chunks = -(-g // chunk)
        padded = np.concatenate([grid, np.repeat(grid[-1:], n_chunks * chunk - g, 0)], 0)
        grid_t = tf.constant(padded.reshape(n_chunks, chunk, 4), x.dtype)
        batch = tf.shape(x)[0]
        x_tiled = tf.tile(x, [chunk, 1, 1, 1])  # (chunk·batch, h, w, c), grid-major
        y_tiled = tf.tile(y, [chunk] + [1] * (len(y.shape) - 1))

        def run(i):
            params = tf.repeat(grid_t[i], batch, axis=0)  # (chunk·batch, 4)
            cand = self.enforce_budget(x_tiled, transform_images(x_tiled, params, self.fill_value), epsilon)
            outputs = model(cand, training=False)
            obj = tf.reshape(self.objective(loss_fn, y_tiled, outputs), [chunk, batch])
            ok = tf.reshape(self.is_successful(outputs, y_tiled), [chunk, batch])
            # Per example, the strongest grid point of this chunk (success first, then loss).
            any_ok = tf.reduce_any(ok, axis=0, keepdims=True)
            rank = tf.where(ok | ~any_ok, obj, tf.constant(-np.inf, obj.dtype))
            j = tf.argmax(rank, axis=0, output_type=tf.int32)  # (batch,)
            idx = tf.stack([j, tf.range(batch)], axis=1)
            c_obj = tf.gather_nd(obj, idx)
            c_ok = tf.gather_nd(ok, idx)
            c_x = tf.ensure_shape(tf.gather(cand, j * batch + tf.range(batch)), x.shape)
            return c_x, c_obj, c_ok

        # Per example, the strongest over the chunks (the shared restart loop).
        return self.strongest_of(n_chunks, run)[0]

    def _random_search(self, x, seed, evaluate):
        batch = tf.shape(x)[0]
        ranges = self._ranges(x.dtype)
        center = tf.constant([0.0, 0.0, 0.0, 1.0], x.dtype)
        seeds = tf.random.experimental.stateless_split(seed, self.k)

        def run(i):
            u = tf.random.stateless_uniform([batch, 4], seeds[i], -1.0, 1.0, dtype=x.dtype)
            return evaluate(center + u * ranges)

        # Worst of k draws per example (the shared restart loop).
        return self.strongest_of(self.k, run)[0]

    def _first_order(self, x, y, loss_fn, model, candidate, evaluate):
        batch = tf.shape(x)[0]
        ranges = self._ranges(x.dtype)
        center = tf.constant([0.0, 0.0, 0.0, 1.0], x.dtype)
        step = self.step_size if self.step_size is not None else 2.5 / self.steps
        name = type(self).__name__

        def fn(params):
            cand = candidate(params)
            outputs = model(cand, training=False)
            return self.objective(loss_fn, y, outputs), cand, outputs

        def body(i, params, best, best_obj, best_ok):
            (obj, cand, outputs), grad = value_and_gradient(
                fn, params, name=f"{name}(method='first_order')", wrt="its input",
                hint="Use method='grid' or method='random'.")
            ok = self.is_successful(outputs, y)
            best, best_obj, best_ok = self.keep_stronger(best, best_obj, best_ok, cand, obj, ok)
            params = params + step * ranges * tf.sign(grad)
            params = tf.clip_by_value(params, center - ranges, center + ranges)
            return i + 1, params, best, best_obj, best_ok

        params0 = tf.tile(center[None], [batch, 1])
        init = (tf.constant(0), params0, x, tf.fill([batch], tf.constant(-np.inf, tf.float32)),
                tf.zeros([batch], tf.bool))
        _, params, best, best_obj, best_ok = tf.while_loop(lambda i, *_: i < self.steps, body, init)
        # The final iterate has not been scored yet.
        cand, obj, ok = evaluate(params)
        return self.keep_stronger(best, best_obj, best_ok, cand, obj, ok)[0]

    def get_config(self):
        config = super().get_config()
        config.update(
            max_rotation=self.max_rotation,
            max_translation=self.max_translation,
            max_scale=self.max_scale,
            method=self.method,
            n_rotations=self.n_rotations,
            n_translations=self.n_translations,
            n_scales=self.n_scales,
            grid_batch_size=self.grid_batch_size,
            k=self.k,
            steps=self.steps,
            step_size=self.step_size,
            fill_value=self.fill_value,
        )
        return config
