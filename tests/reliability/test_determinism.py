"""Determinism: seeded fits and attacks reproduce bit for bit (see docs/reliability.md for the limits).

* `fit` after `keras.utils.set_random_seed` gives bitwise-identical weights: in-process on CPU here
  (default run), and in two fresh processes with `tf.config.experimental.enable_op_determinism()`,
  comparing the saved `.weights.h5` arrays bit for bit (slow test; a third process with another seed
  must differ); the kill-and-resume test also compares two processes bit for bit.
* A seeded attack gives identical examples eagerly and inside `tf.function`, and on re-runs of
  `generate`. Across `generate` batch sizes the examples are identical for attacks without
  randomness (FGSM, PGD without random start, C&W without abort_early, FAB); random attacks draw
  one seed per *batch*,
  so their random starts depend on the batching (not per-example keyed: not done).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka

RNG = np.random.default_rng(0)
X = RNG.uniform(0, 1, size=(48, 6, 6, 1)).astype("float32")
Y = RNG.integers(0, 4, 48).astype("int32")


def _base(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])


def _fit(seed=0, before=None):
    """A seeded adversarial fit; returns the base model (`before(base)` is called before training)."""
    base = _base(seed)
    if before is not None:
        before(base)
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), seed=1 + seed)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # shuffled: the order comes from the seed too
    return base


def _fit_weights():
    return _fit().get_weights()


def test_two_seeded_fits_give_bitwise_identical_weights():
    for a, b in zip(_fit_weights(), _fit_weights()):
        np.testing.assert_array_equal(a, b)


ATTACKS = {
    "FGSM": (lambda: ka.attacks.FGSM(epsilon=0.1), True),
    "FGSM-RS": (lambda: ka.attacks.FGSM(epsilon=0.1, random_start=True, step_size=0.125, seed=1), False),
    "PGD": (lambda: ka.attacks.PGD(epsilon=0.1, steps=3, seed=1), False),
    "PGD-no-random-start": (lambda: ka.attacks.PGD(epsilon=0.1, steps=3, random_start=False), True),
    "APGD": (lambda: ka.attacks.APGD(epsilon=0.1, steps=3, seed=1), False),
    "Square": (lambda: ka.attacks.Square(epsilon=0.1, queries=10, seed=1), False),
    # abort_early decides on the loss of the whole batch, so it depends on the batching: off here.
    "CarliniWagnerL2": (lambda: ka.attacks.CarliniWagnerL2(steps=3, binary_search_steps=2, abort_early=False,
                                                           seed=1), True),
    "FAB": (lambda: ka.attacks.FAB(epsilon=0.3, steps=3, n_target_classes=2, seed=1), True),
}


@pytest.fixture(scope="module")
def base():
    return _base(0)


DEFAULT_RUN = ("FGSM", "PGD", "PGD-no-random-start")  # the rest in the slow run (each traces 3 functions)


@pytest.mark.parametrize("name", [n if n in DEFAULT_RUN else pytest.param(n, marks=pytest.mark.slow)
                                  for n in ATTACKS])
def test_seeded_attack_is_identical_eagerly_in_graph_and_on_reruns(base, name):
    make, batch_independent = ATTACKS[name]
    attack = make()
    x, y, seed = tf.constant(X[:16]), tf.constant(Y[:16]), tf.constant([3, 4])
    eager = attack(base, x, y, seed=seed).numpy()
    graph = tf.function(lambda a, b: attack(base, a, b, seed=seed))(x, y).numpy()
    np.testing.assert_array_equal(eager, graph)
    g32 = attack.generate(base, X, Y, batch_size=16, verbose=0)
    np.testing.assert_array_equal(g32, make().generate(base, X, Y, batch_size=16, verbose=0))
    g48 = attack.generate(base, X, Y, batch_size=48, verbose=0)
    if batch_independent:
        np.testing.assert_array_equal(g32, g48)
    else:  # documented: the random start is drawn per batch, so it depends on the batching
        assert not np.array_equal(g32, g48)


FRESH_PROCESS_FIT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
from tests.reliability.test_determinism import _fit
seed, init_path, trained_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
_fit(seed, before=lambda base: base.save_weights(init_path)).save_weights(trained_path)
"""


def _saved_weights(path):
    """The arrays of a `.weights.h5` file, in file order, as raw bytes (bitwise comparison)."""
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append((name, obj.dtype.str, obj.shape, obj[()].tobytes()))
                     if isinstance(obj, h5py.Dataset) else None)
    assert arrays, f"no weights in {path}"
    return arrays


@pytest.mark.slow
def test_op_determinism_fits_in_fresh_processes_are_bitwise_identical(tmp_path):
    """Two fresh processes (set_random_seed + enable_op_determinism) save bitwise-identical trained weights."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("other seed", 1)):
        paths = [str(tmp_path / f"{name}-{which}.weights.h5") for which in ("init", "trained")]
        proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS_FIT, str(seed), *paths], cwd=root,
                              capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", "")))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = [_saved_weights(p) for p in paths]
    (init_a, trained_a), (init_b, trained_b), (_, trained_other) = runs.values()
    assert trained_a == trained_b  # names, dtypes, shapes and every bit
    assert init_a == init_b
    assert trained_a != init_a  # the fit changed the weights ...
    assert trained_a != trained_other  # ... and a different seed gives different ones: the comparison can fail
