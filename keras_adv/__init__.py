"""keras_adv: adversarial robustness for Keras 3 / TensorFlow.

Wrap any Keras model in `keras_adv.AdversarialModel` and `fit` trains it on
clean and adversarial examples crafted on the fly.
"""

from keras_adv import attacks, datasets, layers, losses, metrics, norms
from keras_adv.models import AdversarialModel, objectives

__version__ = "0.1.0"

__all__ = [
    "AdversarialModel",
    "attacks",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "norms",
    "objectives",
    "__version__",
]
