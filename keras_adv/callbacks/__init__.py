"""Keras callbacks for adversarial training."""

from keras_adv.callbacks.tensorboard import AdversarialImages

__all__ = ["AdversarialImages"]
