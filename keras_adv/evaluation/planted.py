"""Models with *planted* gradient masking, to check that diagnostics catch it.

Each wraps a working classifier in a defence known to fool gradient attacks
without making the model robust (Athalye, Carlini & Wagner 2018, "Obfuscated
Gradients Give a False Sense of Security"): its accuracy is (nearly) that of
the base model, but gradient attacks stall. Use them to test an evaluation
pipeline: `keras_adv.evaluation.diagnose_gradient_masking` should flag them
all, and `evaluate_robustness(..., adaptive=True)` should bring each back to
(about) the base model's robust accuracy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Quantize", "StopGradient", "GaussianNoiseAlways", "GradientReversal", "HighFrequency",
           "JpegLike", "quantized", "stop_gradient", "noisy", "double_softmax", "gradient_reversal",
           "shattered", "jpeg_like", "planted_set"]


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


@keras.saving.register_keras_serializable(package="keras_adv")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass, `−scale ×` the gradient in the backward pass
    (Ganin & Lempitsky 2015): gradient attacks walk *down* the loss."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        scale = self.scale

        @tf.custom_gradient
        def reverse(x):
            return tf.identity(x), lambda dy: -scale * dy

        return reverse(x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_adv")
class HighFrequency(keras.layers.Layer):
    """`x + amplitude·sin(frequency·x + φ)`: a tiny change of the input whose derivative,
    `1 + amplitude·frequency·cos(frequency·x + φ)`, is dominated by a high-frequency
    term of random sign (a *shattered* gradient, differentiable everywhere). The
    phase φ is a fixed pseudo-random pattern over the input's positions, so even a
    constant background gets gradients of random sign."""

    def __init__(self, amplitude: float = 0.02, frequency: float = 1000.0, **kwargs):
        super().__init__(**kwargs)
        self.amplitude = float(amplitude)
        self.frequency = float(frequency)

    def call(self, x):
        size = 1
        for d in x.shape[1:]:
            size *= int(d)
        i = tf.cast(tf.range(size), x.dtype)
        phase = 2.0 * 3.14159265 * tf.math.floormod(tf.sin(i * 12.9898) * 43758.5453, 1.0)
        phase = tf.reshape(phase, [1] + list(x.shape[1:]))
        return x + self.amplitude * tf.sin(self.frequency * x + phase)

    def get_config(self):
        return {**super().get_config(), "amplitude": self.amplitude, "frequency": self.frequency}


@keras.saving.register_keras_serializable(package="keras_adv")
class JpegLike(keras.layers.Layer):
    """JPEG-like compression: 8×8 block DCT, coefficients rounded to multiples of
    `step`, inverse DCT (non-differentiable: the rounding has no gradient).

    Needs images `(batch, H, W, C)` with H and W multiples of 8.
    """

    def __init__(self, step: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.step = float(step)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] % 8 or input_shape[2] % 8:
            raise ValueError(f"JpegLike needs images (batch, H, W, C) with H and W multiples of 8, "
                             f"got shape {input_shape}.")

    def call(self, x):
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        b = tf.reshape(x, [-1, h // 8, 8, w // 8, 8, c])
        b = tf.transpose(b, [0, 1, 3, 5, 2, 4])  # (batch, H/8, W/8, C, 8, 8)

        def dct2(z, inverse=False):
            f = tf.signal.idct if inverse else tf.signal.dct
            z = f(z, type=2, norm="ortho")
            z = tf.linalg.matrix_transpose(z)
            return tf.linalg.matrix_transpose(f(z, type=2, norm="ortho"))

        coef = dct2(b)
        coef = tf.round(coef / self.step) * self.step
        out = dct2(coef, inverse=True)
        out = tf.transpose(out, [0, 1, 4, 2, 5, 3])
        return tf.reshape(out, [-1, h, w, c])

    def get_config(self):
        return {**super().get_config(), "step": self.step}


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


@keras.saving.register_keras_serializable(package="keras_adv")
class SaturatedSoftmax(keras.layers.Softmax):
    """`softmax(T·z)` whose saturation is exact: `softmax(clip(T·(z − max z), −floor, 0))`.

    A float softmax of large logits saturates to a one-hot vector, but whether its gradient is then
    *exactly* zero depends on the CPU's kernels: on an AMD EPYC (AVX2) TF's softmax returned
    0.99999994 for the top class, leaving gradients of ~1e-4 where an Intel machine gave zeros. Here
    the scaled logits more than `floor` below the top one are clipped (zero gradient) and the top
    one's gradient through `z − max z` cancels exactly, so every input whose logit gaps exceed
    `floor / temperature` gets an exactly zero gradient on any CPU.
    """

    def __init__(self, temperature: float = 1000.0, floor: float = 30.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)
        self.floor = float(floor)

    def call(self, inputs, mask=None):
        z = self.temperature * tf.convert_to_tensor(inputs)
        return tf.nn.softmax(tf.clip_by_value(z - tf.reduce_max(z, axis=-1, keepdims=True), -self.floor, 0.0))

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "floor": self.floor}


def double_softmax(base: keras.Model, temperature: float = 1000.0) -> keras.Model:
    """`softmax(softmax(T·logits))` with a saturated inner softmax (`SaturatedSoftmax`): the loss
    gradient is exactly zero wherever the top logit leads the others by more than 30/T. Peeling
    the inner layer off leaves `softmax(logits)`."""

    def post(z):
        return keras.layers.Softmax()(SaturatedSoftmax(temperature)(z))

    return _wrap(base, post=post, name="double_softmax")


def gradient_reversal(base: keras.Model) -> keras.Model:
    return _wrap(base, pre=GradientReversal(), name="gradient_reversal")


def shattered(base: keras.Model, amplitude: float = 0.02, frequency: float = 1000.0) -> keras.Model:
    return _wrap(base, pre=HighFrequency(amplitude, frequency), name="shattered")


def jpeg_like(base: keras.Model, step: float = 0.1) -> keras.Model:
    return _wrap(base, pre=JpegLike(step), name="jpeg_like")


def planted_set(base: keras.Model, *, extended: bool = False) -> dict:
    """The planted models around `base`: `{name: model}`.

    The four classic ones (quantisation, a gradient-blocking preprocessing,
    noise at inference, a saturated softmax); with `extended=True` also a
    JPEG-like preprocessing, a shattered (high-frequency) gradient and a
    gradient-reversal layer.
    """
    out = {
        "quantized": quantized(base),
        "stop_gradient": stop_gradient(base),
        "noisy": noisy(base),
        "double_softmax": double_softmax(base),
    }
    if extended:
        out.update(jpeg_like=jpeg_like(base), shattered=shattered(base),
                   gradient_reversal=gradient_reversal(base))
    return out
