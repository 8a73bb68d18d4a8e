"""A training run for the kill-and-resume tests, run as a real subprocess.

    python tests/reliability/resume_worker.py SPEC_JSON

SPEC keys: backup_dir, log (a JSON-lines file, one line per event), model
("adv" | "free"), order ("backup_first" | "backup_last"), epochs, kill_epoch /
kill_batch (the process sends itself SIGKILL at the start of that batch: no
cleanup, no `finally`, exactly like the OOM killer), weights_out (final
weights, .npz).

Every epoch logs the schedule values it trains with, the wrapper's
seed-generator state at the start of the epoch and the guard's state, so the
parent test can compare a killed-and-resumed run with the schedule and with an
uninterrupted run.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adv as ka  # noqa: E402
from keras_adv.models import FreeAdversarialModel  # noqa: E402

spec = json.loads(sys.argv[1])
keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()

rng = np.random.default_rng(0)
N, D, K = 192, 16, 4
centers = rng.normal(size=(K, D))
y = rng.integers(0, K, size=N).astype("int32")
x = np.clip(0.5 + 0.15 * centers[y] + 0.05 * rng.normal(size=(N, D)), 0, 1).astype("float32")


def log(event, **kw):
    with open(spec["log"], "a") as f:
        f.write(json.dumps({"event": event, **kw}) + "\n")
        f.flush()
        os.fsync(f.fileno())


base = keras.Sequential([keras.Input((D,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(K)])
attack = ka.attacks.PGD(epsilon=0.1, steps=3, step_size=0.04, random_start=True)
if spec["model"] == "free":
    model = FreeAdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1, random_start=True), replays=2, seed=3)
else:
    model = ka.AdversarialModel(base, attack=attack, adv_weight=1.0, seed=3)
model.compile(optimizer=keras.optimizers.Adam(0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class Recorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        log("train_begin", built=bool(self.model.built))

    def on_epoch_begin(self, epoch, logs=None):  # runs after the schedules' (this callback is last)
        self.epoch = epoch
        log("epoch_begin", epoch=epoch, epsilon=self.model.epsilon, adv_weight=self.model.adv_weight,
            seed_state=np.asarray(self.model._seed_generator.state.numpy()).tolist())

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == spec.get("kill_epoch") and batch == spec.get("kill_batch"):
            log("killed", epoch=self.epoch, batch=batch)
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        log("epoch_end", epoch=epoch, guard_history=[list(h) for h in guard.history],
            guard_best=guard.best_accuracy, loss=float(logs["loss"]))


guard = ka.callbacks.CatastrophicOverfittingGuard((x[:32], y[:32]), threshold=0.5, verbose=0,
                                                  backup_dir=spec["backup_dir"],
                                                  attack=ka.attacks.PGD(epsilon=0.1, steps=3, seed=0))
schedules = [ka.callbacks.DelayedStart(2), ka.callbacks.AdvWeightSchedule(lambda e: 0.5 + 0.25 * e)]
backup = keras.callbacks.BackupAndRestore(spec["backup_dir"])
callbacks = [backup] + schedules if spec["order"] == "backup_first" else schedules + [backup]
callbacks = callbacks + [guard, Recorder()]
model.fit(x, y, batch_size=32, epochs=spec["epochs"], shuffle=False, verbose=0, callbacks=callbacks)
np.savez(spec["weights_out"], *base.get_weights())
log("done", epsilon=model.epsilon)
