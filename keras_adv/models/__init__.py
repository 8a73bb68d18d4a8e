"""Adversarially trained models, training objectives and model presets."""

from keras_adv.models import objectives, presets
from keras_adv.models.adversarial_model import AdversarialModel
from keras_adv.models.free_adversarial_model import FreeAdversarialModel

__all__ = ["AdversarialModel", "FreeAdversarialModel", "objectives", "presets"]
