"""A differentiable rotation / translation / scaling layer (bilinear sampling)."""

from __future__ import annotations

import keras

from keras_adv.ops.image import transform_images

__all__ = ["SpatialTransform", "transform_images"]


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
