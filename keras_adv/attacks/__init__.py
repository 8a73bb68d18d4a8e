"""Adversarial attacks: `keras_adv.attacks.FGSM`, `keras_adv.attacks.PGD`, ..."""

from keras_adv.attacks.attack import Attack
from keras_adv.attacks.gradients import NoInputGradientError, value_and_gradient
from keras_adv.attacks.fgsm import FGSM
from keras_adv.attacks.gradient_attack import GradientAttack
from keras_adv.attacks.pgd import PGD
from keras_adv.attacks.carlini_wagner import CarliniWagnerL2
from keras_adv.attacks.spatial import SpatialTransformation
from keras_adv.attacks.apgd import APGD
from keras_adv.attacks.square import Square
from keras_adv.attacks.fab import FAB
from keras_adv.attacks.autoattack import AutoAttack
from keras_adv.attacks.virtual_adversarial import VirtualAdversarial
from keras_adv.attacks.hotflip import HotFlip
from keras_adv.attacks.wrappers import BPDA, EOT
from keras_adv.attacks.constrained import ConstrainedAttack
from keras_adv.attacks.capgd import CAPGD
from keras_adv.attacks.evolutionary import Evolutionary
from keras_adv.attacks.constrained_autoattack import ConstrainedAutoAttack
from keras_adv.attacks._batches import batch_seed

__all__ = [
    "Attack", "GradientAttack", "NoInputGradientError", "value_and_gradient", "FGSM", "PGD", "get",
    "CarliniWagnerL2", "SpatialTransformation", "APGD", "Square", "FAB", "AutoAttack",
    "BPDA", "EOT", "VirtualAdversarial", "HotFlip",
    "ConstrainedAttack", "CAPGD", "Evolutionary", "ConstrainedAutoAttack", "batch_seed",
]


def get(identifier):
    """Returns an attack from an `Attack`, a serialized config dict or a class name."""
    import keras

    if identifier is None or isinstance(identifier, Attack):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
    else:
        obj = None
    if not isinstance(obj, Attack):
        raise TypeError(
            "`attack` must be a keras_adv.attacks.Attack instance (e.g. "
            f"keras_adv.attacks.PGD(epsilon=0.3)), got {identifier!r}."
        )
    return obj
