"""A differentiable rotation / translation / scaling layer (bilinear sampling)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

__all__ = ["SpatialTransform", "transform_images"]


def transform_images(images, params, fill_value=0.0):
    """Rotates, translates and scales a batch of images with bilinear sampling.

    Args:
        images: `(batch, height, width, channels)`.
        params: `(batch, 4)`: rotation in degrees (counter-clockwise), translation
            along x (columns, pixels, positive = right), translation along y
            (rows, pixels, positive = down) and scale factor (1 = unchanged).
            Rotation and scaling are about the image centre.
        fill_value: value of pixels sampled from outside the image.

    Returns:
        The transformed images, same shape and dtype as `images`. The result
        is differentiable with respect to both `images` and `params`.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(
            "SpatialTransform expects images of shape (batch, height, width, channels), "
            f"got shape {images.shape}."
        )
    dtype = images.dtype
    params = tf.cast(params, dtype)
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, dtype), tf.cast(w, dtype)
    theta = params[:, 0] * (math.pi / 180.0)
    tx, ty, scale = params[:, 1], params[:, 2], params[:, 3]
    cy, cx = (hf - 1.0) / 2.0, (wf - 1.0) / 2.0
    rows = tf.cast(tf.range(h), dtype) - cy
    cols = tf.cast(tf.range(w), dtype) - cx
    yy, xx = tf.meshgrid(rows, cols, indexing="ij")  # (h, w) output coordinates
    xx = xx[tf.newaxis] - tx[:, None, None]
    yy = yy[tf.newaxis] - ty[:, None, None]
    cos = tf.cos(theta)[:, None, None]
    sin = tf.sin(theta)[:, None, None]
    inv_s = 1.0 / scale[:, None, None]
    # Inverse map of a counter-clockwise rotation in image coordinates (y down).
    src_x = (cos * xx - sin * yy) * inv_s + cx
    src_y = (sin * xx + cos * yy) * inv_s + cy
    return _bilinear(images, src_x, src_y, fill_value)


def _bilinear(images, src_x, src_y, fill_value):
    dtype = images.dtype
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    x0 = tf.floor(src_x)
    y0 = tf.floor(src_y)
    wx1 = src_x - x0
    wy1 = src_y - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    x0i, y0i = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    padded = tf.pad(images - fill_value, [[0, 0], [1, 1], [1, 1], [0, 0]])  # zero border = fill
    batch_idx = tf.broadcast_to(tf.range(b)[:, None, None], tf.shape(x0i))

    def gather(yi, xi):
        # Indices into the padded image; anything outside maps to the border.
        yi = tf.clip_by_value(yi + 1, 0, h + 1)
        xi = tf.clip_by_value(xi + 1, 0, w + 1)
        return tf.gather_nd(padded, tf.stack([batch_idx, yi, xi], axis=-1))

    out = (
        gather(y0i, x0i) * (wy0 * wx0)[..., None]
        + gather(y0i, x0i + 1) * (wy0 * wx1)[..., None]
        + gather(y0i + 1, x0i) * (wy1 * wx0)[..., None]
        + gather(y0i + 1, x0i + 1) * (wy1 * wx1)[..., None]
    )
    return tf.ensure_shape(tf.cast(out + fill_value, dtype), images.shape)


@keras.saving.register_keras_serializable(package="keras_adv")
class SpatialTransform(keras.layers.Layer):
    """Differentiable rotation, translation and scaling of images (Engstrom
    et al. 2019, "Exploring the Landscape of Spatial Robustness"; the bilinear
    sampler of Jaderberg et al. 2015, "Spatial Transformer Networks").

    Called on `(images, params)`: `images` of shape `(batch, height, width,
    channels)` and per-example `params` of shape `(batch, 4)` holding the
    rotation in degrees (counter-clockwise), the translation in pixels along
    x (right) and y (down), and the scale factor. Rotation and scaling are
    about the image centre; pixels sampled from outside the image take
    `fill_value`. The output is differentiable with respect to the images and
    the parameters, so the layer can sit inside a model or be attacked with
    gradients (`keras_adv.attacks.SpatialTransformation(method="first_order")`).

    Example:

    ```python
    layer = keras_adv.layers.SpatialTransform()
    rotated = layer(images, tf.constant([[15.0, 0.0, 0.0, 1.0]] * batch))
    ```

    Args:
        fill_value: value of pixels sampled from outside the image.
    """

    def __init__(self, fill_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = float(fill_value)

    def call(self, images, params):
        return transform_images(images, params, self.fill_value)

    def compute_output_shape(self, images_shape, params_shape=None):
        return images_shape

    def get_config(self):
        config = super().get_config()
        config["fill_value"] = self.fill_value
        return config
