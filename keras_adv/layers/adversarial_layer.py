"""A layer that turns `(x, y)` into adversarial examples: usable in tf.data pipelines and models."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv import attacks as attacks_lib
from keras_adv.utils.validation import check_number

__all__ = ["AdversarialExamples"]


@keras.saving.register_keras_serializable(package="keras_adv")
class AdversarialExamples(keras.layers.Layer):
    """Crafts adversarial examples against a fixed `model` with `attack`.

    `layer(x, y)` returns `attack(model, x, y)` (float32, within the budget
    and bounds, no gradient). Use it to augment a `tf.data` pipeline on the fly
    — the classic "train on FGSM/PGD examples of a source model" recipe
    (Goodfellow et al. 2015; Tramèr et al. 2018, "Ensemble Adversarial
    Training", with a *static* source model) — or inside a model:

    ```python
    source = keras.models.load_model("source.keras")
    adv = keras_adv.layers.AdversarialExamples(source, keras_adv.attacks.FGSM(epsilon=0.1))
    ds = ds.map(lambda x, y: (adv(x, y), y))           # every epoch fresh examples
    ```

    For a one-off, fixed augmented dataset see
    `keras_adv.augmentation.adversarial_dataset`.

    Args:
        model: the model attacked (a fixed source model, or the model being
            trained: its current weights are used at each call).
        attack: a `keras_adv.attacks.Attack` with a finite ε.
        epsilon: overrides the attack's ε.
        only_in_training: when True, `call(..., training=False)` returns `x`
            unchanged (for use as a layer of a model).
        seed: seed of the random starts (a fresh seed per call either way).
    """

    def __init__(self, model: keras.Model, attack: attacks_lib.Attack, *, epsilon: Optional[float] = None,
                 only_in_training: bool = False, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if not callable(model):
            raise TypeError(f"`model` must be a callable Keras model, got {type(model).__name__}.")
        self.model = model
        self.attack = attacks_lib.get(attack)
        if self.attack is None:
            raise ValueError("`attack` is required, e.g. keras_adv.attacks.FGSM(epsilon=0.1).")
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0, allow_none=True)
        if self.epsilon is None and self.attack.epsilon is None:
            raise ValueError(f"The attack needs a finite `epsilon`; got {self.attack!r}.")
        self.only_in_training = bool(only_in_training)
        self.seed = None if seed is None else check_number("seed", seed, integer=True)
        self.trainable = False

    def call(self, x, y, training=None):
        if self.only_in_training and not training:
            return x
        seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int32, seed=self.seed)
        return self.attack(self.model, x, y, epsilon=self.epsilon, seed=seed)

    def compute_output_shape(self, x_shape, y_shape=None):
        return x_shape

    def compute_output_spec(self, x, y, training=None):
        return keras.KerasTensor(x.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            model=keras.saving.serialize_keras_object(self.model),
            attack=keras.saving.serialize_keras_object(self.attack),
            epsilon=self.epsilon,
            only_in_training=self.only_in_training,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["attack"] = keras.saving.deserialize_keras_object(config["attack"])
        return cls(**config)
