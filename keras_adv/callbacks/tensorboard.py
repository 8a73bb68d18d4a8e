"""TensorBoard pictures of adversarial examples during training."""

from __future__ import annotations

import os
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_adv.utils import data_checks

__all__ = ["AdversarialImages"]


class AdversarialImages(keras.callbacks.Callback):
    """Writes clean, adversarial and perturbation images to TensorBoard every few epochs.

    Use it next to `keras.callbacks.TensorBoard` (which already logs every
    scalar of `AdversarialModel`: `loss`, `clean_loss`, `adv_loss`,
    `accuracy`, `adv_accuracy`, `robustness_margin`) to *see* what the attack
    does to a fixed set of images as the model becomes robust, in the
    spirit of Goodfellow et al. 2015 ("Explaining and Harnessing Adversarial
    Examples"), whose figures show exactly these three panels.

    Three image summaries are written under `name/` at step = epoch:
    `clean`, `adversarial` and `perturbation` (the difference x_adv − x
    mapped to [0, 1] with mid-grey = 0 and ±ε at black/white), into the run
    folder `log_dir/images` (next to the `train`/`validation` runs of the
    TensorBoard callback).

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[
        keras.callbacks.TensorBoard("logs"),
        keras_adv.callbacks.AdversarialImages("logs", x_test[:8], y_test[:8], every_n_epochs=2),
    ])
    # tensorboard --logdir logs   ->  IMAGES tab
    ```

    Args:
        log_dir: the TensorBoard log folder (the same as `TensorBoard`'s).
        x: images `(N, H, W, C)` with C in {1, 3, 4}, in the attack bounds.
        y: their integer labels (or targets for a targeted attack).
        attack: the attack to show; default: the model's `eval_attack`, else
            its training `attack` at the model's current ε (so ε schedules
            are reflected). Required when the model is a plain Keras model.
        every_n_epochs: write at epochs 0, N, 2N, ... (0-based).
        max_images: at most this many images per summary.
        name: the summary name prefix.
    """

    def __init__(self, log_dir: str, x, y, attack=None, *, every_n_epochs: int = 1, max_images: int = 8,
                 name: str = "adversarial_examples"):
        super().__init__()
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
            raise ValueError(f"`x` must be images of shape (N, H, W, C) with C in 1, 3 or 4; got shape {x.shape}.")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"`x` must be floating point in the attack bounds, got {x.dtype}.")
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"`x` and `y` must have the same length, got {len(x)} and {len(y)}.")
        for arg, value in (("every_n_epochs", every_n_epochs), ("max_images", max_images)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer, got {value!r}.")
        self.log_dir = os.fspath(log_dir)
        self.x = x[:max_images]
        self.y = y[:max_images]
        self.attack = attack
        self.every_n_epochs = int(every_n_epochs)
        self.max_images = int(max_images)
        self.name = name
        self._writer = None

    def _target_and_attack(self):
        from keras_adv.models.adversarial_model import AdversarialModel

        model = self.model
        if isinstance(model, AdversarialModel):
            if self.attack is not None:
                return model.base_model, self.attack, None
            if model.eval_attack is not None:
                return model.base_model, model.eval_attack, None
            return model.base_model, model.attack, model.epsilon
        if self.attack is None:
            raise ValueError("AdversarialImages needs `attack=` when the model is not a keras_adv.AdversarialModel.")
        return model, self.attack, None

    def write(self, step: int):
        """Attacks the images with the current weights and writes the three summaries at `step`."""
        target, attack, epsilon = self._target_and_attack()
        x = tf.constant(self.x)
        x_adv = attack(target, x, tf.constant(self.y), epsilon=epsilon)
        eps = epsilon if epsilon is not None else attack.epsilon
        delta = x_adv - x
        scale = float(eps) if eps else float(tf.reduce_max(tf.abs(delta))) or 1.0
        lo, hi = getattr(attack, "bounds", (0.0, 1.0))

        def unit(images):
            return tf.clip_by_value((images - lo) / (hi - lo), 0.0, 1.0)

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        with self._writer.as_default():
            tf.summary.image(f"{self.name}/clean", unit(x), step=step, max_outputs=self.max_images)
            tf.summary.image(f"{self.name}/adversarial", unit(x_adv), step=step, max_outputs=self.max_images)
            tf.summary.image(f"{self.name}/perturbation", tf.clip_by_value(0.5 + 0.5 * delta / scale, 0.0, 1.0),
                             step=step, max_outputs=self.max_images,
                             description=f"x_adv - x scaled so that -{scale:g} is black and +{scale:g} white")
        self._writer.flush()

    def on_train_begin(self, logs=None):
        # The attack (`attack=` on a plain model) and the images, checked before the first batch trains.
        target, attack, _ = self._target_and_attack()
        data_checks.check_callback_data(self, target, attack, self.x, self.y)

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every_n_epochs == 0:
            self.write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
