"""Crash and resume: `keras.callbacks.BackupAndRestore` with keras_adv's wrappers and callbacks.

The real-crash tests run a training subprocess (tests/reliability/resume_worker.py) that
sends itself SIGKILL in the middle of an epoch, restart it, and compare it with an
uninterrupted run. They take ~20 s per subprocess on 2 cores and are marked slow; the
in-process tests below check the same mechanisms (built wrapper, schedule order,
seed state in the checkpoint, guard state) in the default run.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_adv as ka

WORKER = os.path.join(os.path.dirname(__file__), "resume_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _data(n=64, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(n, d)).astype("float32"), rng.integers(0, k, n).astype("int32")


def _model(d=8, k=3, seed=1):
    keras.utils.set_random_seed(seed)
    base = keras.Sequential([keras.Input((d,)), keras.layers.Dense(k)])
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), seed=5)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Crash(keras.callbacks.Callback):
    """Raises in the middle of epoch `epoch` (an in-process stand-in for a crash)."""

    def __init__(self, epoch):
        super().__init__()
        self.crash_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == self.crash_epoch and batch == 1:
            raise RuntimeError("crash")


class _EpsilonLog(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = {}

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.values[len(self.values)] = self.model.epsilon


def test_wrapper_of_a_built_model_is_built_and_backup_and_restore_needs_no_build(tmp_path):
    model = _model()
    assert model.built  # the base was built by keras.Input
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "b"))])


@pytest.mark.parametrize("backup_first", [True, False])
def test_delayed_start_resumes_in_either_callback_order(tmp_path, backup_first):
    x, y = _data()
    backup_dir = str(tmp_path / "b")

    def run(extra):
        model = _model()
        log = _EpsilonLog()
        backup = keras.callbacks.BackupAndRestore(backup_dir)
        delayed = ka.callbacks.DelayedStart(2)
        cbs = [backup, delayed] if backup_first else [delayed, backup]
        try:
            model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=cbs + extra + [log])
        except RuntimeError:
            pass
        return model, log.values

    _, before = run([_Crash(1)])  # killed during the delay: the checkpoint holds ε = 0
    assert before == {0: 0.0, 1: 0.0}
    model, after = run([])
    # resumed at epoch 1 (epoch 1 repeated: at most one epoch lost); ε = 0 for epoch 1, then the attack's ε.
    assert list(after.values()) == pytest.approx([0.0, 0.1, 0.1, 0.1])
    assert model.epsilon == pytest.approx(0.1)


def test_seed_generator_state_is_in_the_weights_file(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    state = np.array(model._seed_generator.state.numpy())
    assert state[1] > 0  # the stream advanced
    model.save_weights(str(tmp_path / "w.weights.h5"))
    other = _model()
    other.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(other._seed_generator.state.numpy(), state)


def test_overfitting_guard_keeps_its_state_across_a_resume(tmp_path):
    x, y = _data(n=32)
    backup_dir = str(tmp_path / "b")

    def guard():
        return ka.callbacks.CatastrophicOverfittingGuard(
            (x, y), attack=ka.attacks.FGSM(epsilon=0.1), threshold=0.5, verbose=0, backup_dir=backup_dir)

    model, g1 = _model(), guard()
    with pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=16, epochs=4, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup_dir), g1, _Crash(2)])
    assert [e for e, _ in g1.history] == [0, 1]
    good = [w.copy() for w in g1._good_weights]
    model2, g2 = _model(), guard()
    model2.fit(x, y, batch_size=16, epochs=4, verbose=0,
               callbacks=[keras.callbacks.BackupAndRestore(backup_dir), g2])
    assert [e for e, _ in g2.history] == [0, 1, 2, 3]
    assert g2.history[:2] == g1.history
    assert not os.path.exists(os.path.join(backup_dir, "overfitting_guard.json"))  # removed at the end
    # the state restored at the resume was the killed run's last good weights
    g3 = guard()
    g3.backup_dir = str(tmp_path / "c")
    os.makedirs(g3.backup_dir)
    g1.backup_dir = g3.backup_dir
    g1._save_state()
    assert g3._load_state()
    for a, b in zip(g3._good_weights, good):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ real SIGKILL
def _run_worker(tmp_path, name, **spec):
    spec = {"log": str(tmp_path / f"{name}.jsonl"), "weights_out": str(tmp_path / f"{name}.npz"),
            "kill_epoch": None, "kill_batch": 2, "epochs": 5, **spec}
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, WORKER, json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=600)
    events = [json.loads(line) for line in open(spec["log"])]
    return proc, events


@pytest.mark.slow
@pytest.mark.parametrize("model,order", [("adv", "backup_first"), ("adv", "backup_last"), ("free", "backup_first")])
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, model, order):
    common = dict(model=model, order=order)
    ref, ref_events = _run_worker(tmp_path, "ref", backup_dir=str(tmp_path / "ref_b"), **common)
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed, killed_events = _run_worker(tmp_path, "killed", backup_dir=str(tmp_path / "b"), kill_epoch=3,
                                        **common)
    assert killed.returncode == -9  # SIGKILL: no cleanup ran
    assert killed_events[-1] == {"event": "killed", "epoch": 3, "batch": 2}
    resumed, resumed_events = _run_worker(tmp_path, "resumed", backup_dir=str(tmp_path / "b"), **common)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def begins(events):
        return {e["epoch"]: e for e in events if e["event"] == "epoch_begin"}

    ref_b, res_b = begins(ref_events), begins(resumed_events)
    assert min(res_b) == 3  # resumed at the epoch it was killed in: less than one epoch lost
    for epoch in res_b:  # ε (DelayedStart(2)), λ (0.5 + 0.25·e) and the random stream continue
        assert res_b[epoch]["epsilon"] == ref_b[epoch]["epsilon"]
        assert res_b[epoch]["adv_weight"] == ref_b[epoch]["adv_weight"] == 0.5 + 0.25 * epoch
        assert res_b[epoch]["seed_state"] == ref_b[epoch]["seed_state"]
    assert res_b[3]["epsilon"] == pytest.approx(0.1)
    ref_end = [e for e in ref_events if e["event"] == "epoch_end"][-1]
    res_end = [e for e in resumed_events if e["event"] == "epoch_end"][-1]
    assert res_end["guard_history"] == ref_end["guard_history"]  # the guard kept its history
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    for k in a.files:  # the resumed run *is* the uninterrupted run, bit for bit
        np.testing.assert_array_equal(a[k], b[k])
