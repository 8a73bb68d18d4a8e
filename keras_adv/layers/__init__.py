"""Attack layers."""

from keras_adv.layers.adversarial_layer import AdversarialExamples

__all__ = ["AdversarialExamples"]
