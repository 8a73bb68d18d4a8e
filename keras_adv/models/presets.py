"""Model presets: small ready-made classifiers for the bundled datasets."""

from __future__ import annotations

from typing import Optional, Sequence

import keras

__all__ = ["small_cnn", "small_resnet", "tabular_mlp", "text_classifier", "get", "available"]


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


def _residual_block(h, filters: int, stride: int, name: str):
    shortcut = h
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(h)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def small_resnet(input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10, *, width: int = 16,
                 blocks_per_stage: int = 1, name: str = "small_resnet") -> keras.Model:
    """A small residual network (He et al. 2016, "Deep Residual Learning for
    Image Recognition") that outputs logits.

    A 3×3 stem with `width` filters, then three stages of `blocks_per_stage`
    basic residual blocks (two 3×3 convolutions with batch normalisation)
    with `width`, `2·width`, `4·width` filters; stages 2 and 3 halve the
    resolution while it is larger than 4 pixels. Global average pooling and a
    logits layer finish it. With the defaults it has about 78 k weights: a
    CIFAR-10 sized ResNet-8 that trains on a CPU.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels), got {input_shape}.")
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    h = keras.layers.BatchNormalization(name="stem_bn")(h)
    h = keras.layers.Activation("relu", name="stem_relu")(h)
    size = min(input_shape[:2])
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks_per_stage):
            stride = 2 if (stage > 0 and block == 0 and size > 4) else 1
            if stride == 2:
                size = (size + 1) // 2
            h = _residual_block(h, filters, stride, name=f"stage{stage + 1}_block{block + 1}")
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="keras_adv")
class ZeroPadding(keras.layers.Layer):
    """Sets masked (padding) positions of a sequence to zero and consumes the mask.

    Lets mask-unaware layers (convolutions) follow an `Embedding(mask_zero=True)`
    without Keras' "destroys the mask" warning, while the embedding keeps
    its mask (which inner-layer attacks read to leave padding alone).
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs
        return inputs * keras.ops.cast(keras.ops.expand_dims(mask, -1), inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return None


def text_classifier(vocab_size: int, num_classes: int = 2, *, sequence_length: Optional[int] = None,
                    architecture: str = "cnn", embedding_dim: int = 64, width: int = 64,
                    vectorizer=None,
                    name: str = "text_classifier") -> keras.Model:
    """A small text classifier that outputs logits; its `Embedding` is named `"embedding"`.

    `AdversarialModel(model, attack=..., perturb_layer="embedding")` trains
    it adversarially in embedding space (Miyato et al. 2017), and
    `keras_adv.attacks.HotFlip` attacks its token ids.

    Args:
        vocab_size: number of token ids (0 is padding, masked).
        num_classes: number of classes.
        sequence_length: fixed input length, or None for variable length.
        architecture: `"cnn"` (Kim 2014: convolutions of widths 3 and 5,
            global max pooling) or `"bilstm"` (a bidirectional LSTM that
            follows the padding mask) or `"bag"` (the mean of the
            embeddings over the non-padding tokens, a bag-of-embeddings model).
        embedding_dim: embedding size.
        width: filters per convolution / LSTM units per direction.
        vectorizer: optional adapted `keras.layers.TextVectorization`; the
            model then takes raw strings (shape `(batch,)`) and vectorizes
            inside.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"`vocab_size` must be an integer >= 2, got {vocab_size!r}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    if architecture not in ("cnn", "bilstm", "bag"):
        raise ValueError(f"`architecture` must be 'cnn', 'bilstm' or 'bag', got {architecture!r}.")
    if vectorizer is not None:
        inputs = keras.Input((), dtype="string", name="text")
        ids = vectorizer(inputs)
    else:
        inputs = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        ids = inputs
    h = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(ids)
    if architecture == "cnn":
        h = ZeroPadding(name="zero_padding")(h)
        branches = [keras.layers.GlobalMaxPooling1D()(
            keras.layers.Conv1D(width, k, padding="same", activation="relu", name=f"conv{k}")(h))
            for k in (3, 5)]
        h = keras.layers.Concatenate()(branches)
    elif architecture == "bilstm":
        h = keras.layers.Bidirectional(keras.layers.LSTM(width), name="bilstm")(h)
    else:
        h = keras.layers.GlobalAveragePooling1D(name="mean_pool")(h)  # follows the mask
    h = keras.layers.Dense(width, activation="relu")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def tabular_mlp(input_shape: Sequence[int] = (30,), num_classes: int = 2, *, width: int = 64,
                data=None) -> keras.Model:
    """An MLP for tables of raw features: `Normalization` (adapted to `data` when given), two ReLU layers, logits.

    Constrained attacks work on the raw records (integers stay integers), so
    the standardisation lives inside the model.
    """
    if len(input_shape) != 1:
        raise ValueError(f"`input_shape` of a table must be (features,), got {tuple(input_shape)}.")
    norm = keras.layers.Normalization(name="standardize")
    if data is not None:
        norm.adapt(data)
    return keras.Sequential([
        keras.Input(tuple(input_shape)), norm,
        keras.layers.Dense(width, activation="relu"), keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(num_classes),
    ], name="tabular_mlp")


_PRESETS = {"small_cnn": small_cnn, "small_resnet": small_resnet, "tabular_mlp": tabular_mlp}


def available():
    """The preset names `get()` accepts (and `keras-adv train --model`): models built for a dataset's input shape.

    `text_classifier` is not among them: it is built for a vocabulary, not an
    input shape (`keras_adv.models.presets.text_classifier(vocab_size, ...)`),
    and the command line trains no text datasets.
    """
    return sorted(_PRESETS)


def get(name: str, input_shape: Sequence[int], num_classes: int, **options) -> keras.Model:
    """Builds the preset `name` for images of `input_shape` and `num_classes` classes (logits out).

    `options` are the preset's own keyword arguments (e.g. `width=96`).

    Raises:
        ValueError: unknown `name` (the message lists the available presets),
            or bad `input_shape`/`num_classes`.
    """
    if isinstance(name, str) and name.lower() == "text_classifier":
        raise ValueError(
            "`text_classifier` is built for a vocabulary, not an input shape: call "
            "keras_adv.models.presets.text_classifier(vocab_size, num_classes, sequence_length=...) directly. "
            f"Presets built by name: {', '.join(available())}."
        )
    if not isinstance(name, str) or name.lower() not in _PRESETS:
        raise ValueError(f"Unknown model preset {name!r}. Available presets: {', '.join(available())}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    return _PRESETS[name.lower()](input_shape=input_shape, num_classes=num_classes, **options)
