"""Keras layers for adversarial robustness: `SpatialTransform`, `AdversarialExamples`."""

from keras_adv.layers.adversarial_layer import AdversarialExamples
from keras_adv.layers.spatial_transform import SpatialTransform, transform_images

__all__ = ["AdversarialExamples", "SpatialTransform", "transform_images"]
