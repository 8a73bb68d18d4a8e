"""Adversarially trained models."""

from keras_adv.models import objectives
from keras_adv.models.adversarial_model import AdversarialModel

__all__ = ["AdversarialModel", "objectives"]
