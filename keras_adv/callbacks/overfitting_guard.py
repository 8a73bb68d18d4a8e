"""Guard against catastrophic overfitting in fast (single-step) adversarial training."""

from __future__ import annotations

import json
import os
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_adv import attacks as attacks_lib
from keras_adv import losses as losses_lib
from keras_adv.utils import data_checks
from keras_adv.utils.validation import check_number
from keras_adv.utils.io import atomic_path, atomic_write

__all__ = ["CatastrophicOverfittingGuard"]

_ACTIONS = ("restore", "restore_and_stop", "stop", "none")


class CatastrophicOverfittingGuard(keras.callbacks.Callback):
    """Detects catastrophic overfitting and restores the last good weights.

    Single-step adversarial training (FGSM, Fast-AT of Wong et al. 2020,
    "Fast is better than free: Revisiting adversarial training") can suddenly
    lose all robustness to multi-step attacks within an epoch while its
    training (FGSM) accuracy keeps rising: "catastrophic overfitting". Wong et
    al. detect it by the PGD accuracy of a training minibatch and keep the
    weights from before the collapse; this callback does that every
    `check_every` epochs on a held-out batch:

    1. it measures the robust accuracy of the model under a multi-step `attack`
       (default PGD-10 at the training attack's ε, step ε/4, random start);
    2. while the accuracy does not drop, it snapshots the weights (the latest
       epoch whose accuracy is within `threshold` of the best so far);
    3. when accuracy falls more than `threshold` below the best, it *fires*:
       restores the snapshot (`action="restore"`), optionally also stops
       training (`"restore_and_stop"`) or only stops (`"stop"`), and multiplies
       the model's ε by `epsilon_factor` when given.

    It logs `guard_robust_accuracy` and `guard_fired` (0/1) every checked
    epoch; `fired_epochs` lists the epochs it fired. The optimizer state is
    not rolled back, nor are ε and λ (only the weights of the base model).

    Example:

    ```python
    model = keras_adv.AdversarialModel(
        base, attack=keras_adv.attacks.FGSM(0.2, random_start=True, step_size=0.25),
        objective="madry")
    guard = keras_adv.callbacks.CatastrophicOverfittingGuard((x_val[:256], y_val[:256]))
    model.fit(x, y, epochs=30, callbacks=[guard])
    ```

    Args:
        validation_data: `(x, y)` held-out examples (a few hundred suffice).
        attack: the multi-step attack measuring robustness; by default
            `PGD(epsilon=<training ε>, steps=10, step_size=ε/4)`.
        threshold: the drop of robust accuracy below the best that counts as
            a collapse (absolute, in [0, 1]).
        action: `"restore"`, `"restore_and_stop"`, `"stop"` or `"none"` (only log).
        epsilon_factor: when given (in (0, 1]), ε is multiplied by it on firing.
        check_every: check every this many epochs.
        batch_size: batch size of the attack.
        verbose: print a line when the guard fires.
        backup_dir: a folder where the guard keeps its state (its history,
            best accuracy and last good weights) after every checked epoch,
            so a run resumed with `keras.callbacks.BackupAndRestore` (give
            both the same folder) continues with it instead of starting
            afresh. The state files are written atomically and removed when
            training ends normally. `None`: the state lives in memory only.
    """

    def __init__(self, validation_data, attack: Optional[attacks_lib.Attack] = None, *,
                 threshold: float = 0.2, action: str = "restore",
                 epsilon_factor: Optional[float] = None, check_every: int = 1,
                 batch_size: int = 256, verbose: int = 1, backup_dir: Optional[str] = None):
        super().__init__()
        try:
            x, y = validation_data
        except (TypeError, ValueError):
            raise ValueError("`validation_data` must be a pair (x, y) of held-out examples.") from None
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        if len(self.x) != len(self.y) or len(self.x) == 0:
            raise ValueError(
                f"`validation_data` must hold as many labels as inputs (non-empty); got {len(self.x)} "
                f"inputs and {len(self.y)} labels."
            )
        self.attack = None if attack is None else attacks_lib.get(attack)
        self.threshold = check_number("threshold", threshold, minimum=0.0)
        if self.threshold > 1.0:
            raise ValueError(f"`threshold` must be in [0, 1] (an accuracy drop), got {threshold!r}.")
        if action not in _ACTIONS:
            raise ValueError(f"`action` must be one of {_ACTIONS}, got {action!r}.")
        self.action = action
        self.epsilon_factor = check_number("epsilon_factor", epsilon_factor, minimum=0.0, strict=True,
                                            allow_none=True)
        if self.epsilon_factor is not None and self.epsilon_factor > 1.0:
            raise ValueError(f"`epsilon_factor` must be in (0, 1], got {epsilon_factor!r}.")
        self.check_every = check_number("check_every", check_every, minimum=1, integer=True)
        self.batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        self.verbose = int(verbose)
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        self.fired_epochs = []
        self.history = []
        self.best_accuracy = -1.0
        self.best_epoch = None
        self._good_weights = None
        self._attack_fn = None

    # -------------------------------------------------------------- helpers
    def _target(self):
        return getattr(self.model, "base_model", self.model)

    def _make_attack(self):
        if self.attack is not None:
            return self.attack
        eps = getattr(getattr(self.model, "attack", None), "epsilon", None)
        if eps is None:
            raise ValueError(
                "CatastrophicOverfittingGuard needs an `attack` when the model is not a "
                "keras_adv.AdversarialModel."
            )
        return attacks_lib.PGD(epsilon=eps, steps=10, step_size=eps / 4, random_start=True, seed=0)

    def robust_accuracy(self) -> float:
        """Robust accuracy of the current weights on the held-out examples."""
        target = self._target()
        if self._attack_fn is None:
            attack = self._make_attack()

            @tf.function(reduce_retracing=True)
            def correct(xb, yb, seed):
                x_adv = attack(target, xb, yb, seed=seed)
                pred = losses_lib.predicted_class(target(x_adv, training=False), losses_lib.infer_from_logits(target))
                return tf.cast(tf.equal(pred, losses_lib.label_class(yb)), tf.float32)

            self._attack_fn = correct
        hits = 0.0
        for i in range(0, len(self.x), self.batch_size):
            seed = tf.constant([i, 17], tf.int32)  # the same randomness every check
            hits += float(tf.reduce_sum(self._attack_fn(self.x[i:i + self.batch_size],
                                                        self.y[i:i + self.batch_size], seed)))
        return hits / len(self.x)

    # ------------------------------------------------------------ callbacks
    # ---------------------------------------------------------- resuming
    def _state_paths(self):
        return (os.path.join(self.backup_dir, "overfitting_guard.json"),
                os.path.join(self.backup_dir, "overfitting_guard_weights.npz"))

    def _save_state(self):
        meta_path, weights_path = self._state_paths()
        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_path(weights_path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, *self._good_weights)
        with atomic_write(meta_path) as f:  # written last: it names a complete weights file
            json.dump({"history": self.history, "fired_epochs": self.fired_epochs,
                       "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
                       "n_weights": len(self._good_weights)}, f)

    def _load_state(self) -> bool:
        meta_path, weights_path = self._state_paths()
        if not (os.path.exists(meta_path) and os.path.exists(weights_path)):
            return False
        with open(meta_path) as f:
            meta = json.load(f)
        with np.load(weights_path) as data:
            weights = [data[f"arr_{i}"] for i in range(meta["n_weights"])]
        self.history = [tuple(h) for h in meta["history"]]
        self.fired_epochs = list(meta["fired_epochs"])
        self.best_accuracy, self.best_epoch = float(meta["best_accuracy"]), meta["best_epoch"]
        self._good_weights = weights
        return True

    def on_train_begin(self, logs=None):
        # The held-out examples and the attack, checked before the first batch trains (not after an epoch).
        data_checks.check_callback_data(self, self.model, self._make_attack(), self.x, self.y,
                                        arg_prefix="validation_data ")
        self._attack_fn = None
        self.fired_epochs, self.history = [], []
        self.best_accuracy, self.best_epoch = -1.0, None
        self._good_weights = [np.array(w) for w in self._target().get_weights()]
        self._first_epoch = True
        if self.backup_dir is not None:
            self._load_state()

    def on_epoch_begin(self, epoch, logs=None):
        if getattr(self, "_first_epoch", False):
            # A run killed between BackupAndRestore's checkpoint and ours may have recorded an epoch the
            # resumed run repeats: keep only the epochs before the one we resume at.
            self._first_epoch = False
            self.history = [h for h in self.history if h[0] < epoch]
            self.fired_epochs = [e for e in self.fired_epochs if e < epoch]

    def on_train_end(self, logs=None):
        if self.backup_dir is not None:
            for path in self._state_paths():
                if os.path.exists(path):
                    os.remove(path)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.check_every:
            return
        acc = self.robust_accuracy()
        self.history.append((epoch, acc))
        fired = acc < self.best_accuracy - self.threshold
        if logs is not None:
            logs["guard_robust_accuracy"] = acc
            logs["guard_fired"] = float(fired)
        if not fired:
            if acc > self.best_accuracy:
                self.best_accuracy, self.best_epoch = acc, epoch
            self._good_weights = [np.array(w) for w in self._target().get_weights()]
            if self.backup_dir is not None:
                self._save_state()
            return
        self.fired_epochs.append(epoch)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: catastrophic overfitting: robust accuracy {acc:.3f} fell below "
                  f"the best {self.best_accuracy:.3f} (epoch {self.best_epoch + 1}) by more than "
                  f"{self.threshold}; action={self.action}.")
        if self.action in ("restore", "restore_and_stop"):
            self._target().set_weights(self._good_weights)
        if self.action in ("stop", "restore_and_stop"):
            self.model.stop_training = True
        if self.epsilon_factor is not None and hasattr(type(self.model), "epsilon"):
            self.model.epsilon = self.model.epsilon * self.epsilon_factor
        if self.backup_dir is not None:
            self._save_state()
