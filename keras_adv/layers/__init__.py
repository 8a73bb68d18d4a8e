"""Keras layers for adversarial robustness: `keras_adv.layers.SpatialTransform`."""

from keras_adv.layers.spatial_transform import SpatialTransform, transform_images

__all__ = ["SpatialTransform", "transform_images"]
