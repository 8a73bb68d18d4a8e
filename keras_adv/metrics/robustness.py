"""Robustness metrics as `keras.metrics.Metric` subclasses."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv import losses as losses_lib

__all__ = ["RobustAccuracy", "RobustnessMargin"]


def _weights(sample_weight, n):
    if sample_weight is None:
        return tf.ones([n], tf.float32)
    return tf.reshape(tf.cast(sample_weight, tf.float32), [-1])


@keras.saving.register_keras_serializable(package="keras_adv")
class RobustAccuracy(keras.metrics.Metric):
    """Accuracy on adversarial inputs: the fraction still classified correctly.

    `update_state(y_true, y_pred_adv, sample_weight=None)` takes the true
    labels (integers or one-hot) and the model's outputs on the adversarial
    examples.

    Example:

    ```python
    m = keras_adv.metrics.RobustAccuracy()
    m.update_state(y, model(attack(model, x, y)))
    m.result()
    ```
    """

    def __init__(self, name: str = "robust_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        pred = losses_lib.predicted_class(y_pred)
        label = losses_lib.label_class(y_true)
        w = _weights(sample_weight, tf.shape(label)[0])
        hit = tf.cast(tf.equal(pred, label), tf.float32)
        self.correct.assign_add(tf.reduce_sum(hit * w))
        self.count.assign_add(tf.reduce_sum(w))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_adv")
class RobustnessMargin(keras.metrics.Metric):
    """Mean drop in true-class confidence from clean to adversarial inputs.

    For each example, `p(y | x) − p(y | x_adv)` with `p` the softmax
    probability; averaged over examples. 0 means the attack did not move the
    model's confidence; 1 means it moved it all the way.

    `update_state(y_true, y_pred_clean, y_pred_adv, sample_weight=None)`.

    Args:
        from_logits: whether the model outputs logits (`True`),
            probabilities (`False`) or either, detected per batch (`None`).
    """

    def __init__(self, name: str = "robustness_margin", from_logits: Optional[bool] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = from_logits
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred_clean, y_pred_adv, sample_weight=None):
        label = losses_lib.label_class(y_true)
        idx = tf.stack([tf.range(tf.shape(label)[0]), label], axis=1)
        p_clean = tf.exp(tf.gather_nd(losses_lib.to_log_probs(y_pred_clean, self.from_logits), idx))
        p_adv = tf.exp(tf.gather_nd(losses_lib.to_log_probs(y_pred_adv, self.from_logits), idx))
        w = _weights(sample_weight, tf.shape(label)[0])
        self.total.assign_add(tf.reduce_sum((p_clean - p_adv) * w))
        self.count.assign_add(tf.reduce_sum(w))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
