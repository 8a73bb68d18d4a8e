"""Robustness metrics as `keras.metrics.Metric` subclasses."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv import losses as losses_lib

__all__ = ["RobustAccuracy", "RobustnessMargin", "WeightedMeanMetric"]


def _weights(sample_weight, n):
    if sample_weight is None:
        return tf.ones([n], tf.float32)
    return tf.reshape(tf.cast(sample_weight, tf.float32), [-1])


class WeightedMeanMetric(keras.metrics.Metric):
    """Base class: the sample-weighted mean of a per-example value, `total / count`.

    Subclasses compute per-example values and weights in `update_state` and
    pass them to `accumulate`.
    """

    def __init__(self, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def accumulate(self, values, weights):
        """Adds `sum(values · weights)` to the total and `sum(weights)` to the count."""
        self.total.assign_add(tf.reduce_sum(tf.cast(values, tf.float32) * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_adv")
class RobustAccuracy(WeightedMeanMetric):
    """Robust accuracy: the fraction of examples classified correctly both clean and under attack.

    The definition of RobustBench and AutoAttack (Croce & Hein 2020), the one
    `keras_adv.evaluate_robustness` reports: an example the model already
    gets wrong on the clean input never counts as robust.

    `update_state(y_true, y_pred_adv, sample_weight=None, *, y_pred_clean=None)`
    takes the true labels (integers or one-hot), the model's outputs on the
    adversarial examples and, to apply the definition, on the clean inputs.
    Without `y_pred_clean` only the adversarial outputs are scored, which is
    the same number when the attack returns misclassified inputs unchanged
    (AutoAttack does), and is what Keras' `adv_accuracy` in `fit` logs means
    (accuracy on the adversarial batch). Single-unit (sigmoid) outputs are
    thresholded: at 0 for logits, at 0.5 for probabilities.

    Example:

    ```python
    m = keras_adv.metrics.RobustAccuracy()
    m.update_state(y, model(attack(model, x, y)), y_pred_clean=model(x))
    m.result()
    ```

    Args:
        from_logits: for a single-unit output, whether it is a logit (`True`)
            or a probability (`False`); `None` decides per batch (a
            probability when every value lies in [0, 1]).
    """

    def __init__(self, name: str = "robust_accuracy", from_logits: Optional[bool] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = from_logits

    def update_state(self, y_true, y_pred, sample_weight=None, *, y_pred_clean=None):
        label = losses_lib.label_class(y_true)
        correct = tf.equal(losses_lib.predicted_class(y_pred, self.from_logits), label)
        if y_pred_clean is not None:
            correct = correct & tf.equal(losses_lib.predicted_class(y_pred_clean, self.from_logits), label)
        w = _weights(sample_weight, tf.shape(label)[0])
        self.accumulate(correct, w)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_adv")
class RobustnessMargin(WeightedMeanMetric):
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

    def update_state(self, y_true, y_pred_clean, y_pred_adv, sample_weight=None):
        label = losses_lib.label_class(y_true)
        idx = tf.stack([tf.range(tf.shape(label)[0]), label], axis=1)
        p_clean = tf.exp(tf.gather_nd(losses_lib.to_log_probs(y_pred_clean, self.from_logits), idx))
        p_adv = tf.exp(tf.gather_nd(losses_lib.to_log_probs(y_pred_adv, self.from_logits), idx))
        w = _weights(sample_weight, tf.shape(label)[0])
        self.accumulate(p_clean - p_adv, w)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
