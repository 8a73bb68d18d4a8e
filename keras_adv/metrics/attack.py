"""Attack-strength metrics as `keras.metrics.Metric` subclasses."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv import losses as losses_lib
from keras_adv import norms as norms_lib
from keras_adv.metrics.robustness import WeightedMeanMetric, _weights

__all__ = ["AttackSuccessRate", "MeanPerturbationNorm"]


@keras.saving.register_keras_serializable(package="keras_adv")
class AttackSuccessRate(WeightedMeanMetric):
    """Fraction of attacked examples on which the attack succeeded.

    Untargeted (default): an example counts when the model classified it
    correctly on the clean input and misclassifies the adversarial one, so the
    rate is measured on the examples there was something to attack (Carlini et
    al. 2019, "On Evaluating Adversarial Robustness", §4: report success among
    originally-correct points). With `only_correct=False` every example counts
    and success is simply "misclassified after the attack".
    Targeted: success is "classified as the target"; `y_true` then holds the
    targets.

    `update_state(y_true, y_pred_clean, y_pred_adv, sample_weight=None)`.

    Example:

    ```python
    m = keras_adv.metrics.AttackSuccessRate()
    m.update_state(y, model(x), model(attack(model, x, y)))
    m.result()
    ```

    Args:
        targeted: whether the attack was targeted.
        only_correct: count only examples the model got right on clean inputs
            (untargeted only).
        from_logits: for a single-unit output, whether it is a logit (`True`)
            or a probability (`False`); `None` decides per batch (a
            probability when every value lies in [0, 1]).
    """

    def __init__(self, name: str = "attack_success_rate", targeted: bool = False,
                 only_correct: bool = True, from_logits: Optional[bool] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.targeted = bool(targeted)
        self.only_correct = bool(only_correct)
        self.from_logits = from_logits

    def update_state(self, y_true, y_pred_clean, y_pred_adv, sample_weight=None):
        label = losses_lib.label_class(y_true)
        pred_adv = losses_lib.predicted_class(y_pred_adv, self.from_logits)
        w = _weights(sample_weight, tf.shape(label)[0])
        if self.targeted:
            success = tf.equal(pred_adv, label)
        else:
            success = tf.not_equal(pred_adv, label)
            if self.only_correct:
                correct = tf.equal(losses_lib.predicted_class(y_pred_clean, self.from_logits), label)
                w = w * tf.cast(correct, tf.float32)
        self.accumulate(success, w)

    def get_config(self):
        return {**super().get_config(), "targeted": self.targeted, "only_correct": self.only_correct,
                "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_adv")
class MeanPerturbationNorm(WeightedMeanMetric):
    """Mean size ‖x_adv − x‖ of adversarial perturbations in a given norm.

    `update_state(x, x_adv, sample_weight=None)`. With `only_changed=True`,
    examples the attack left unchanged (zero perturbation) are not counted, so
    the metric is the mean size of the perturbations actually used. For a
    minimal-perturbation attack this is the (unnormalised) empirical
    robustness of Moosavi-Dezfooli et al. 2016, "DeepFool".

    Args:
        norm: `"linf"`, `"l2"`, `"l1"` or a `keras_adv.norms.Norm`.
        only_changed: skip examples with a zero perturbation.
    """

    def __init__(self, name: str = "mean_perturbation_norm", norm="l2",
                 only_changed: bool = False, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(norm, dict):
            norm = norm.get("name")
        self._norm = norms_lib.get(norm)
        self.norm = self._norm.name
        self.only_changed = bool(only_changed)

    def update_state(self, x, x_adv, sample_weight=None):
        x = tf.cast(x, tf.float32)
        x_adv = tf.cast(x_adv, tf.float32)
        if x.shape.rank is not None and x_adv.shape.rank is not None and x.shape != x_adv.shape:
            raise ValueError(f"`x` and `x_adv` must have the same shape, got {x.shape} and {x_adv.shape}.")
        size = tf.reshape(self._norm.distance(x, x_adv), [-1])
        w = _weights(sample_weight, tf.shape(size)[0])
        if self.only_changed:
            w = w * tf.cast(size > 0, tf.float32)
        self.accumulate(size, w)

    def get_config(self):
        return {**super().get_config(), "norm": self.norm, "only_changed": self.only_changed}
