"""Per-example losses used by attacks, and label helpers.

Attacks need per-example losses (shape `(batch,)`), never batch means: a mean
would scale every example's gradient by 1/batch.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import keras
import tensorflow as tf

__all__ = ["crossentropy", "margin", "get", "predicted_class", "label_class", "to_log_probs", "per_example",
           "infer_from_logits", "declared_from_logits", "check_loss_matches_outputs"]

_EPS = 1e-12
_BIG = 1e9  # added to the true class's score to leave it out of a max


def _looks_like_probabilities(outputs):
    """True when every row is non-negative and sums to 1 (softmax outputs)."""
    outputs = tf.cast(outputs, tf.float32)
    nonneg = tf.reduce_all(outputs >= 0.0)
    sums = tf.reduce_sum(outputs, axis=-1)
    return tf.logical_and(nonneg, tf.reduce_all(tf.abs(sums - 1.0) < 1e-3))


def to_log_probs(outputs, from_logits=None):
    """Log-probabilities from logits or probabilities (auto-detected when `from_logits` is None).

    A single-unit output (a sigmoid binary classifier: the probability, or the
    logit, of class 1) becomes the two columns `[log p(0), log p(1)]`, so
    every loss, margin and attack treats it as a two-class model.
    """
    outputs = tf.cast(outputs, tf.float32)
    if outputs.shape.rank is not None and outputs.shape.rank >= 1 and outputs.shape[-1] == 1:
        return _binary_log_probs(outputs, from_logits)
    if from_logits is True:
        return tf.nn.log_softmax(outputs, axis=-1)
    log_p = tf.math.log(tf.clip_by_value(outputs, _EPS, 1.0))
    if from_logits is False:
        return log_p
    return tf.where(_looks_like_probabilities(outputs), log_p, tf.nn.log_softmax(outputs, axis=-1))


def infer_from_logits(model):
    """Whether `model` outputs logits (True) or probabilities (False), read from its last layer.

    Known for a Functional or Sequential model with one output produced by its
    last layer: a linear `Dense`/`EinsumDense`/convolution gives logits, a
    `Softmax` layer or a softmax activation gives probabilities (a sigmoid
    activation too, on a single unit). Otherwise (a subclassed model, a custom
    activation, a multi-output model) a compiled model's loss says it
    (`from_logits`, see `declared_from_logits`). Anything else is None: the
    losses then detect the kind from each batch of outputs (all in [0, 1]:
    probabilities), which costs a few more graph operations per attack step
    and can misread a batch of logits that all happen to lie in [0, 1]; so
    compile a subclassed model with its loss before attacking it.
    """
    if not isinstance(model, keras.Model):
        return None
    known = _from_last_layer(model)
    if known is None:
        known = declared_from_logits(getattr(model, "loss", None))
    return known


def _from_last_layer(model):
    try:
        outputs = model.outputs
        layer = model.layers[-1]
        if not outputs or len(outputs) != 1 or layer.output is not outputs[0]:
            return None
    except (AttributeError, ValueError, RuntimeError, IndexError):  # subclassed, unbuilt or shared
        return None
    if isinstance(layer, keras.layers.Softmax):
        return False
    activation = getattr(layer, "activation", None)
    if activation is keras.activations.softmax:
        return False
    if activation is keras.activations.sigmoid and outputs[0].shape[-1] == 1:
        return False
    linear = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D, keras.layers.Conv2D,
              keras.layers.Conv3D)
    if activation is keras.activations.linear and isinstance(layer, linear):
        return True
    return None


def declared_from_logits(loss):
    """What a Keras loss expects: logits (True), probabilities (False) or unknown (None).

    Read from a `Loss` object's `from_logits`, or from the default of a loss
    given by name or as a function (`"sparse_categorical_crossentropy"` and
    `keras.losses.binary_crossentropy` expect probabilities). Losses without
    `from_logits` (a custom function, mean squared error) are None.
    """
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except (ValueError, TypeError):
            return None
    if isinstance(loss, keras.losses.Loss):
        try:
            value = loss.get_config().get("from_logits")
        except (NotImplementedError, TypeError, AttributeError):
            return None
        return None if value is None else bool(value)
    if callable(loss):
        import inspect

        try:
            parameter = inspect.signature(loss).parameters.get("from_logits")
        except (TypeError, ValueError):
            return None
        if parameter is not None and isinstance(parameter.default, bool):
            return parameter.default
    return None


def check_loss_matches_outputs(loss, model, *, argument="loss"):
    """Raises a `ValueError` when `loss` and the last layer of `model` disagree on logits.

    A model ending in a linear `Dense` outputs logits; a crossentropy that
    expects probabilities (`from_logits=False`, the default of a loss given by
    name) would then read them as probabilities and train on nonsense without
    any error (and the reverse: a softmax output with `from_logits=True`).
    Nothing is raised when either side is unknown (`infer_from_logits`).
    """
    declared = declared_from_logits(loss)
    inferred = infer_from_logits(model)
    if declared is None or inferred is None or declared == inferred:
        return
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", repr(loss))
    layer = model.layers[-1]
    if inferred:
        raise ValueError(
            f"`{argument}`={name!r} expects probabilities (from_logits=False), but model {model.name!r} ends in "
            f"{type(layer).__name__} {layer.name!r} with a linear activation, so it outputs logits: the loss "
            "would read them as probabilities and training would fail silently. Give a loss object with "
            "from_logits=True (e.g. keras.losses.SparseCategoricalCrossentropy(from_logits=True)), or end "
            "the model with a softmax (a sigmoid for one unit)."
        )
    raise ValueError(
        f"`{argument}`={name!r} expects logits (from_logits=True), but model {model.name!r} ends in "
        f"{type(layer).__name__} {layer.name!r}, which outputs probabilities (softmax or sigmoid): give the "
        "loss from_logits=False, or drop the final activation so the model outputs logits."
    )


def _binary_log_probs(outputs, from_logits):
    if from_logits is None:
        # One unit: a probability when every value lies in [0, 1] (as `predicted_class` decides).
        in_unit = tf.reduce_all((outputs >= 0.0) & (outputs <= 1.0))
    else:
        in_unit = tf.constant(not from_logits)
    p = tf.clip_by_value(outputs, _EPS, 1.0 - 1e-7)
    from_p = tf.concat([tf.math.log1p(-p), tf.math.log(p)], axis=-1)
    from_z = tf.concat([tf.math.log_sigmoid(-outputs), tf.math.log_sigmoid(outputs)], axis=-1)
    return tf.where(in_unit, from_p, from_z)


def _one_hot_like(y, outputs):
    num_classes = tf.shape(outputs)[-1]
    if y.shape.rank == outputs.shape.rank and y.shape[-1] != 1:
        return tf.cast(y, tf.float32)
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    return tf.one_hot(y, num_classes, dtype=tf.float32)


def crossentropy(y_true, y_pred, from_logits=None):
    """Per-example categorical cross-entropy.

    Accepts integer labels `(batch,)` or one-hot `(batch, classes)`, and
    logits or probabilities (auto-detected: rows that are non-negative and sum
    to one are taken as probabilities).
    """
    y_true = tf.convert_to_tensor(y_true)
    log_p = to_log_probs(y_pred, from_logits)
    return -tf.reduce_sum(_one_hot_like(y_true, log_p) * log_p, axis=-1)


@keras.saving.register_keras_serializable(package="keras_adv")
def margin(y_true, y_pred):
    """Per-example Carlini-Wagner margin loss, to maximise: `max_{j≠y} z_j − z_y`.

    Computed on log-probabilities `z` (logits or probabilities auto-detected;
    logit differences are unchanged), it is positive once the example is
    misclassified. Unlike cross-entropy its gradient does not vanish where
    the softmax saturates (Carlini & Wagner 2017, "Towards Evaluating the
    Robustness of Neural Networks").
    """
    z_y, z_other = true_and_other(to_log_probs(y_pred), label_class(y_true))
    return z_other - z_y


def true_and_other(scores, labels):
    """`(z_y, max_{j≠y} z_j)` per example, for scores `(batch, classes)` and integer labels `(batch,)`."""
    num_classes = tf.shape(scores)[-1]
    onehot = tf.one_hot(labels, num_classes, dtype=scores.dtype)
    z_y = tf.reduce_sum(onehot * scores, axis=-1)
    z_other = tf.reduce_max(scores - onehot * _BIG, axis=-1)
    return z_y, z_other


def per_example(loss):
    """A callable `(y_true, y_pred) -> (batch,)` from a Keras loss, name or function.

    A loss function (given by name, e.g. `"binary_crossentropy"`, or as a
    plain function) gets its labels' rank matched to the outputs' first, as
    Keras' `compile` does: attacks take labels `(batch,)`, a single-unit model
    outputs `(batch, 1)`.
    """
    if loss is None:
        return None
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # `Loss.call` is the unreduced per-example loss by Keras' contract.
        return loss.call
    if callable(loss):
        if getattr(loss, "__module__", None) == __name__:  # ours take either rank
            return loss
        return _rank_matched(loss)
    raise TypeError(f"`loss` must be a Keras loss, a loss name or a callable, got {loss!r}.")


def _rank_matched(fn):
    @functools.wraps(fn)
    def call(y_true, y_pred):
        y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
        rt, rp = y_true.shape.rank, y_pred.shape.rank
        if rt is not None and rp is not None:
            if rp == rt + 1 and y_pred.shape[-1] == 1:
                y_true = tf.expand_dims(y_true, -1)
            elif rt == rp + 1 and y_true.shape[-1] == 1:
                y_true = tf.squeeze(y_true, -1)
        return fn(y_true, y_pred)
    return call


def get(loss):
    """Validates an attack's `loss` argument (None, a name, a Keras loss or a callable)."""
    if loss is None:
        return None
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if isinstance(loss, dict):
        return keras.saving.deserialize_keras_object(loss)
    if callable(loss):
        return loss
    raise TypeError(f"`loss` must be None, a Keras loss, a loss name or a callable, got {loss!r}.")


def predicted_class(outputs, from_logits=None):
    """Arg-max class of a batch of scores; a single-unit output is thresholded.

    One unit: a logit is thresholded at 0, a probability at 0.5. `from_logits`
    says which; when None, the innermost `outputs_from_logits` block decides
    (attacks open one for the model they attack, reading its last layer), else
    the batch: a probability when every value lies in [0, 1].
    """
    outputs = tf.cast(outputs, tf.float32)
    if outputs.shape[-1] == 1:
        if from_logits is None:
            from_logits = getattr(_OUTPUT_KIND, "from_logits", None)
        if from_logits is None:
            in_unit = tf.reduce_all((outputs >= 0.0) & (outputs <= 1.0))
            thr = tf.where(in_unit, 0.5, 0.0)
        else:
            thr = tf.constant(0.0 if from_logits else 0.5)
        return tf.cast(tf.squeeze(outputs, -1) > thr, tf.int32)
    return tf.argmax(outputs, axis=-1, output_type=tf.int32)


_OUTPUT_KIND = threading.local()


@contextlib.contextmanager
def outputs_from_logits(from_logits):
    """Within the block, `predicted_class` calls without `from_logits` take this value.

    Only a single-unit (binary) output needs it: its values alone cannot say
    whether they are logits or probabilities. `None` leaves the batch to decide.
    """
    previous = getattr(_OUTPUT_KIND, "from_logits", None)
    _OUTPUT_KIND.from_logits = from_logits
    try:
        yield
    finally:
        _OUTPUT_KIND.from_logits = previous


def label_class(y):
    """Integer class of labels given as integers `(batch,)`/`(batch, 1)` or one-hot `(batch, classes)`."""
    y = tf.convert_to_tensor(y)
    if y.shape.rank == 2 and y.shape[-1] != 1:
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(y, [-1]), tf.int32)
