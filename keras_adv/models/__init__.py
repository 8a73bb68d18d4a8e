"""Adversarially trained models, training objectives and model presets."""

from keras_adv.models import objectives, presets
from keras_adv.models.adversarial_model import AdversarialModel

__all__ = ["AdversarialModel", "objectives", "presets"]
