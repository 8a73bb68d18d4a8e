"""`FreeAdversarialModel`: "free" adversarial training (minibatch replay)."""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from keras_adv import attacks as attacks_lib
from keras_adv.attacks.gradients import value_and_gradient
from keras_adv.utils.validation import check_number
from keras_adv.models.adversarial_model import AdversarialModel
from keras_adv.utils import data_checks

__all__ = ["FreeAdversarialModel"]


@keras.saving.register_keras_serializable(package="keras_adv")
class FreeAdversarialModel(AdversarialModel):
    """Free adversarial training (Shafahi et al. 2019, "Adversarial Training for Free!").

    Every minibatch is replayed `replays` (m) times. Each replay does *one*
    forward/backward pass on `x + δ` whose gradient feeds both the weights
    (an optimizer step) and the perturbation: `δ ← Π_ε(δ + step·normalize(∇_δ L))`
    (a sign step for L∞). δ persists across the replays of a minibatch
    (starting from 0, or a random point of the ball with
    `attack.random_start=True`) and is always float32, even under mixed
    precision. The adversarial examples thus cost nothing beyond the
    weight updates: train for `epochs / m` epochs to match the cost of
    `epochs` epochs of clean training.

    The threat model comes from `attack` (its ε, norm, bounds, `step_size`
    (default ε, as in the paper) and `random_start`); the attack's own loop is
    not run during training (it is during `evaluate()` unless `eval_attack`
    is given). The perturbation ascends the gradient of the total objective,
    whose δ-dependent part is the adversarial term (for `"trades"` the KL),
    so every objective works; the default is pure adversarial training
    (`"madry"`), as in the paper. ε schedules (`keras_adv.callbacks`) apply.
    Unlike the paper, δ restarts at every new minibatch rather than being
    carried over from the previous one (batches may differ in size).

    Example:

    ```python
    model = keras_adv.models.FreeAdversarialModel(
        base, attack=keras_adv.attacks.FGSM(epsilon=0.2), replays=4)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30 // 4)
    ```

    Args:
        base_model: the model to make robust.
        attack: defines the threat model (e.g. `FGSM(epsilon=...)`).
        replays: m ≥ 1, the number of replays of each minibatch (optimizer
            steps per batch).
        adv_weight, objective, eval_attack, seed: as in
            `keras_adv.AdversarialModel`; `objective` defaults to `"madry"`.
    """

    def __init__(
        self,
        base_model: keras.Model,
        attack: Optional[attacks_lib.Attack] = None,
        replays: int = 4,
        adv_weight: float = 1.0,
        objective="madry",
        eval_attack: Optional[attacks_lib.Attack] = None,
        seed: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(base_model, attack=attack, adv_weight=adv_weight, objective=objective,
                         eval_attack=eval_attack, seed=seed, **kwargs)
        self.replays = check_number("replays", replays, minimum=1, integer=True)
        if not hasattr(self.attack.norm, "normalize"):
            raise ValueError(f"`attack` must define a norm with `normalize`; got {self.attack!r}.")

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_single_input(x)
        y, sample_weight = data_checks.batch_checks(self, y, sample_weight)
        attack = self.attack
        # float32 (the perturbation stays float32 under mixed precision), finite and inside the bounds.
        x = attack._validate_x(tf.cast(x, tf.float32))
        eps = tf.cast(self._epsilon, tf.float32)
        step = tf.cast(attack.step_size, tf.float32) if attack.step_size is not None else eps
        if attack.random_start:
            noise = attack.norm.random_start(tf.shape(x), eps, self._replica_seed(), tf.float32)
            delta = attack.enforce_budget(x, x + noise, eps) - x
        else:
            delta = tf.zeros_like(x)
        objective = self._objective
        weights = self.trainable_weights
        y_clean = None
        if not objective.needs_clean_gradient:
            y_clean = self(x, training=False)  # for the clean loss and metrics only
        for _ in range(self.replays):
            def forward(delta):
                y_clean_r = self(x, training=True) if objective.needs_clean_gradient else y_clean
                y_adv = self(x + delta, training=True)
                total, clean, adv = self._total_loss(x, y, y_clean_r, y_adv, sample_weight)
                return self._loss_for_gradient(total), (total, clean, adv, y_clean_r, y_adv)

            # One backward pass gives the weight and the input gradients (the shared helper
            # raises NoInputGradientError for a model without input gradient).
            (_, (total, clean, adv, y_clean_r, y_adv)), grad_delta, grads = value_and_gradient(
                forward, delta, sources=weights, name=type(self).__name__,
                hint="Free adversarial training needs it: use AdversarialModel with a gradient-free attack.")
            self._track(x, total, clean, adv)
            data_checks.assert_finite_loss(total)
            self.optimizer.apply_gradients(zip(grads, weights))
            # Loss scaling (mixed_float16) rescales the gradient; normalize() removes the scale.
            delta = attack.enforce_budget(
                x, x + delta + step * attack.norm.normalize(tf.cast(grad_delta, tf.float32)), eps
            ) - x
            delta = tf.stop_gradient(delta)
        return self.compute_metrics(x, y, y_clean_r, sample_weight, y_pred_adv=y_adv)

    def get_config(self):
        config = super().get_config()
        config["replays"] = self.replays
        return config
