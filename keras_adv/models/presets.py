"""Model presets: small ready-made classifiers for the bundled datasets."""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["small_cnn", "get", "available"]


def small_cnn(input_shape: Sequence[int] = (8, 8, 1), num_classes: int = 10, *, width: int = 32,
              name: str = "small_cnn") -> keras.Model:
    """A small convolutional classifier that outputs logits.

    Two 3×3 convolutions (`width`, `2·width` filters), global pooling for
    inputs larger than 16 pixels, a dense hidden layer and a logits layer.
    """
    input_shape = tuple(int(d) for d in input_shape)
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    if min(input_shape[:2]) > 16:
        h = keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(4 * width, activation="relu")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


_PRESETS = {"small_cnn": small_cnn}


def available():
    return sorted(_PRESETS)


def get(name: str, input_shape, num_classes: int) -> keras.Model:
    if name not in _PRESETS:
        raise ValueError(f"Unknown model preset {name!r}. Available presets: {', '.join(available())}.")
    return _PRESETS[name](input_shape=input_shape, num_classes=num_classes)
