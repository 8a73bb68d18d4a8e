"""Models with *planted* gradient masking, to check that diagnostics catch it.

Each wraps a working classifier in a defence known to fool gradient attacks
without making the model robust (Athalye, Carlini & Wagner 2018, "Obfuscated
Gradients Give a False Sense of Security"): its accuracy is (nearly) that of
the base model, but gradient attacks stall. Use them to test an evaluation
pipeline: `keras_adv.evaluation.diagnose_gradient_masking` should flag all four.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Quantize", "StopGradient", "GaussianNoiseAlways", "quantized", "stop_gradient",
           "noisy", "double_softmax", "planted_set"]


@keras.saving.register_keras_serializable(package="keras_adv")
class Quantize(keras.layers.Layer):
    """Input quantisation by rounding to `levels` grey levels (a shattered gradient: None)."""

    def __init__(self, levels: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(levels)

    def call(self, x):
        k = float(self.levels - 1)
        return tf.round(x * k) / k

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


@keras.saving.register_keras_serializable(package="keras_adv")
class StopGradient(keras.layers.Layer):
    """An identity preprocessing layer that blocks the gradient."""

    def call(self, x):
        return tf.stop_gradient(x)


@keras.saving.register_keras_serializable(package="keras_adv")
class GaussianNoiseAlways(keras.layers.Layer):
    """Adds Gaussian noise to the input *also at inference* (a stochastic defence)."""

    def __init__(self, stddev: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.stddev = float(stddev)

    def call(self, x, training=None):
        return x + tf.random.normal(tf.shape(x), stddev=self.stddev, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


def _wrap(base, pre=None, post=None, name=None):
    inputs = keras.Input(base.input_shape[1:])
    h = pre(inputs) if pre is not None else inputs
    h = base(h)
    if post is not None:
        h = post(h)
    return keras.Model(inputs, h, name=name)


def quantized(base: keras.Model, levels: int = 8) -> keras.Model:
    return _wrap(base, pre=Quantize(levels), name="quantized")


def stop_gradient(base: keras.Model) -> keras.Model:
    return _wrap(base, pre=StopGradient(), name="stop_gradient")


def noisy(base: keras.Model, stddev: float = 0.05) -> keras.Model:
    return _wrap(base, pre=GaussianNoiseAlways(stddev), name="noisy")


def double_softmax(base: keras.Model, temperature: float = 1000.0) -> keras.Model:
    """`softmax(softmax(T·logits))`: the inner softmax saturates, so the loss gradient is exactly zero."""

    def post(z):
        p = keras.layers.Softmax()(keras.layers.Rescaling(temperature)(z))
        return keras.layers.Softmax()(p)

    return _wrap(base, post=post, name="double_softmax")


def planted_set(base: keras.Model) -> dict:
    """The four planted models around `base`: `{name: model}`."""
    return {
        "quantized": quantized(base),
        "stop_gradient": stop_gradient(base),
        "noisy": noisy(base),
        "double_softmax": double_softmax(base),
    }
