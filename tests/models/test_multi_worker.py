"""AdversarialModel.fit under MultiWorkerMirroredStrategy: two worker processes on localhost (TF_CONFIG).

Checks, against one process training on the same global batches: the same loss after every step and
the same weights; metrics aggregated across workers; different random starts on each worker; and a
run killed mid-training resumed by `keras.callbacks.BackupAndRestore`.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
mode, out = sys.argv[1], sys.argv[2]
if mode == "single":
    strategy = tf.distribute.get_strategy()
    index = 0
else:
    index = int(os.environ["WORKER_INDEX"])
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": os.environ["WORKERS"].split(",")},
                                          "task": {"type": "worker", "index": index}})
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras, keras_adv as ka

rng = np.random.default_rng(0)
x = rng.uniform(0.2, 0.8, size=(96, 6)).astype("float32")
y = rng.integers(0, 3, 96)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
with strategy.scope():
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    # A deterministic attack (no random start) so that one and two workers do the same work.
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2, random_start=False), seed=1)
    model.compile(keras.optimizers.SGD(0.3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

steps = []


class Record(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        steps.append(float(logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        if os.environ.get("DIE_AT_EPOCH") == str(epoch):
            os._exit(3)  # the job is killed after this epoch's backup


callbacks = [Record()]
if os.environ.get("BACKUP_DIR"):
    callbacks.insert(0, keras.callbacks.BackupAndRestore(os.path.join(os.environ["BACKUP_DIR"], str(index))))
hist = model.fit(data, epochs=4, verbose=0, callbacks=callbacks).history
ev = model.evaluate(data, verbose=0, return_dict=True)

# Random starts: every replica attacks the same points with its own noise.
attack = ka.attacks.PGD(epsilon=0.1, steps=1, step_size=1e-3)
xs = tf.constant(x[:8])
ys = tf.constant(y[:8])


@tf.function
def craft():
    return strategy.run(lambda: model._craft(attack, xs, ys, None, None))


x_adv = strategy.experimental_local_results(craft())[0].numpy()
json.dump({"steps": steps, "hist": hist, "eval": ev, "weights": [w.tolist() for w in base.get_weights()],
           "x_adv": x_adv.tolist(), "replicas": strategy.num_replicas_in_sync}, open(f"{out}.{index}.json", "w"))
'''


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _two_workers(script, out, timeout=400, **extra):
    workers = ",".join(f"localhost:{p}" for p in _free_ports(2))
    procs = [
        subprocess.Popen([sys.executable, script, "multi", out], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env(WORKERS=workers, WORKER_INDEX=i, **extra))
        for i in range(2)
    ]
    results = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, err))
    return results


def single_and_two_workers(source, tmp, timeout=400):
    """Runs the script `source` once alone (`single`) and as two workers (`multi`).

    The script takes `mode out` arguments and writes `{out}.{worker index}.json`.
    Returns the script's path and the JSON of the single run, worker 0 and worker 1.
    """
    script = str(tmp / "worker.py")
    with open(script, "w") as f:
        f.write(source)
    single = subprocess.run([sys.executable, script, "single", str(tmp / "single")], cwd=ROOT,
                            capture_output=True, text=True, env=_env(), timeout=timeout)
    assert single.returncode == 0, single.stderr[-3000:]
    for code, err in _two_workers(script, str(tmp / "multi"), timeout=timeout):
        assert code == 0, err[-3000:]
    load = lambda name: json.load(open(tmp / name))  # noqa: E731
    return script, load("single.0.json"), load("multi.0.json"), load("multi.1.json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mw")
    script, single, w0, w1 = single_and_two_workers(SCRIPT, tmp)
    return {"single": single, "w0": w0, "w1": w1, "tmp": tmp, "script": script}


def test_two_workers_train_like_one(runs):
    single, w0, w1 = runs["single"], runs["w0"], runs["w1"]
    assert w0["replicas"] == 2 and single["replicas"] == 1
    assert len(w0["steps"]) == len(single["steps"]) == 4 * 6
    np.testing.assert_allclose(w0["steps"], single["steps"], rtol=1e-4)
    np.testing.assert_allclose(w1["steps"], single["steps"], rtol=1e-4)
    for a, b in zip(w0["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # Metrics aggregated over both workers' halves of each global batch: the single-process values.
    for key in ("loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"):
        np.testing.assert_allclose(w0["hist"][key], single["hist"][key], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(w0["eval"][key], single["eval"][key], rtol=1e-4, atol=1e-6)


def test_each_worker_draws_its_own_random_start(runs):
    a, b = np.array(runs["w0"]["x_adv"]), np.array(runs["w1"]["x_adv"])
    assert np.abs(a - b).max() > 1e-3


def test_backup_and_restore_resumes_a_killed_run(runs):
    tmp, script = runs["tmp"], runs["script"]
    backup = str(tmp / "backup")
    killed = _two_workers(script, str(tmp / "killed"), BACKUP_DIR=backup, DIE_AT_EPOCH=1)
    assert [code for code, _ in killed] == [3, 3]
    for code, err in _two_workers(script, str(tmp / "resumed"), BACKUP_DIR=backup):
        assert code == 0, err[-3000:]
    resumed = json.load(open(tmp / "resumed.0.json"))
    # Epochs 0-1 came from the backup: only epochs 2-3 ran again, ending where the uninterrupted run ended.
    assert len(resumed["steps"]) == 2 * 6
    np.testing.assert_allclose(resumed["steps"], runs["single"]["steps"][12:], rtol=1e-4)
    for a, b in zip(resumed["weights"], runs["single"]["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-4)
