"""Adversarially trained models."""

from keras_adv.models import objectives
from keras_adv.models.adversarial_model import AdversarialModel
from keras_adv.models.free_adversarial_model import FreeAdversarialModel

__all__ = ["AdversarialModel", "FreeAdversarialModel", "objectives"]
