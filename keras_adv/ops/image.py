"""Image operations shared by attacks and layers (no dependency on either).

`transform_images` is the differentiable rotation / translation / scaling
used by `keras_adv.attacks.SpatialTransformation` and the layer
`keras_adv.layers.SpatialTransform`. Both import it from here, so neither
package imports the other.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["transform_images"]


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
    if params.shape.rank != 2 or (params.shape[-1] is not None and params.shape[-1] != 4):
        raise ValueError(
            "SpatialTransform expects `params` of shape (batch, 4): rotation in degrees, translation along x "
            f"and along y in pixels, scale; got shape {params.shape}."
        )
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
