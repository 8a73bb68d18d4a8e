"""keras_adv: adversarial robustness for Keras 3 / TensorFlow.

Wrap any Keras model in `keras_adv.AdversarialModel` and `fit` trains it on
clean and adversarial examples crafted on the fly.
"""

from keras_adv import _compat

_compat.check_versions()  # one line naming the version needed, before anything else imports Keras

from keras_adv import attacks, callbacks, datasets, detection, domains, evaluation, layers, losses, metrics, models, norms
from keras_adv import augmentation
from keras_adv.evaluation import evaluate_robustness
from keras_adv.models import AdversarialModel, objectives
from keras_adv.models import FreeAdversarialModel

__version__ = "0.1.0"

__all__ = [
    "AdversarialModel",
    "FreeAdversarialModel",
    "attacks",
    "augmentation",
    "callbacks",
    "datasets",
    "detection",
    "domains",
    "evaluate_robustness",
    "evaluation",
    "layers",
    "losses",
    "metrics",
    "models",
    "norms",
    "objectives",
    "__version__",
]
