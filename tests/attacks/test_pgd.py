"""PGD: budget, bounds, strength, targeting, seeding, graph mode, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import linear_model

NORMS = {"linf": 0.1, "l2": 0.75, "l1": 4.0}


@pytest.fixture(scope="module")
def cnn_and_data():
    from keras_adv.datasets import load_digits
    from keras_adv.models.presets import small_cnn

    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = load_digits()
    model = small_cnn(width=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model, xt[:128], yt[:128]


def _norm(name, d):
    d = d.reshape(len(d), -1)
    return {"linf": np.abs(d).max(1), "l2": np.sqrt((d**2).sum(1)), "l1": np.abs(d).sum(1)}[name]


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_budget_and_bounds_hold_and_accuracy_drops(cnn_and_data, norm):
    model, x, y = cnn_and_data
    eps = NORMS[norm]
    attack = ka.attacks.PGD(epsilon=eps, norm=norm, steps=10, seed=0)
    x_adv = attack(model, x, y).numpy()
    assert np.all(_norm(norm, x_adv - x) <= eps * (1 + 1e-5))
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    clean = np.mean(np.argmax(model(x), -1) == y)
    robust = np.mean(np.argmax(model(x_adv), -1) == y)
    assert clean > 0.8
    assert robust < clean - 0.2


def test_more_steps_and_restarts_are_not_weaker(cnn_and_data):
    model, x, y = cnn_and_data
    acc = lambda xa: np.mean(np.argmax(model(xa), -1) == y)  # noqa: E731
    weak = acc(ka.attacks.FGSM(epsilon=0.1)(model, x, y))
    strong = acc(ka.attacks.PGD(epsilon=0.1, steps=20, restarts=3, seed=1)(model, x, y))
    assert strong <= weak


def test_restarts_keep_the_best_run_per_example(cnn_and_data):
    model, x, y = cnn_and_data
    attack = ka.attacks.PGD(epsilon=0.05, steps=3, restarts=4, seed=5)
    single = ka.attacks.PGD(epsilon=0.05, steps=3, restarts=1, seed=5)
    seeds = tf.random.experimental.stateless_split(tf.constant([7, 7]), 4)
    x_multi = attack(model, x, y, seed=tf.constant([7, 7])).numpy()
    wrong_multi = np.argmax(model(x_multi), -1) != y
    # Every example broken by any single run (same seeds) is broken by the restarted attack.
    wrong_any = np.zeros(len(y), bool)
    for s in seeds:
        wrong_any |= np.argmax(model(single(model, x, y, seed=s)), -1) != y
    np.testing.assert_array_equal(wrong_multi, wrong_any)


def test_targeted_reaches_the_target_on_an_easy_case():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype("float32")
    model = linear_model(w, np.zeros(3), (4,))
    x = rng.uniform(0.4, 0.6, size=(32, 4)).astype("float32")
    target = np.full(32, 1)
    attack = ka.attacks.PGD(epsilon=0.4, steps=30, targeted=True, seed=0)
    x_adv = attack(model, x, target)
    assert np.all(np.argmax(model(x_adv), -1) == 1)


def test_seed_makes_it_deterministic_and_seeds_differ(cnn_and_data):
    model, x, y = cnn_and_data
    a = ka.attacks.PGD(epsilon=0.1, steps=2, seed=42)(model, x, y).numpy()
    b = ka.attacks.PGD(epsilon=0.1, steps=2, seed=42)(model, x, y).numpy()
    c = ka.attacks.PGD(epsilon=0.1, steps=2, seed=43)(model, x, y).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_graph_mode_equals_eager(cnn_and_data):
    model, x, y = cnn_and_data
    attack = ka.attacks.PGD(epsilon=0.1, steps=3)
    seed = tf.constant([3, 4])
    eager = attack(model, x, y, seed=seed).numpy()
    graph = tf.function(lambda a, b: attack(model, a, b, seed=seed))(tf.constant(x), tf.constant(y)).numpy()
    np.testing.assert_allclose(eager, graph, atol=1e-6)


def test_epsilon_override_is_a_tensor_without_retracing(cnn_and_data):
    model, x, y = cnn_and_data
    attack = ka.attacks.PGD(epsilon=0.1, steps=2)
    eps = tf.Variable(0.05)
    traces = []

    @tf.function
    def run(a, b):
        traces.append(1)
        return attack(model, a, b, epsilon=eps, seed=tf.constant([1, 1]))

    d1 = np.abs(run(x, y).numpy() - x).max()
    eps.assign(0.02)
    d2 = np.abs(run(x, y).numpy() - x).max()
    assert len(traces) == 1
    assert d1 == pytest.approx(0.05, abs=1e-6) and d2 == pytest.approx(0.02, abs=1e-6)


def test_generate_numpy_and_tf_data_match_direct_calls(cnn_and_data, capsys):
    model, x, y = cnn_and_data
    attack = ka.attacks.PGD(epsilon=0.1, steps=3, random_start=False)
    direct = attack(model, x, y).numpy()
    from_np = attack.generate(model, x, y, batch_size=50, verbose=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    from_ds = attack.generate(model, ds, verbose=0)
    np.testing.assert_allclose(from_np, direct, atol=1e-6)
    np.testing.assert_allclose(from_ds, direct, atol=1e-6)
    assert "3/3" in capsys.readouterr().out  # the progress bar ran over the 3 batches


@pytest.mark.parametrize(
    "attack",
    [
        ka.attacks.PGD(epsilon=0.3, steps=7, norm="l2", restarts=2, seed=3, targeted=True),
        ka.attacks.FGSM(epsilon=0.1, random_start=True, step_size=0.125, bounds=(-1.0, 1.0)),
        ka.attacks.PGD(epsilon=3.0, norm=ka.norms.L1(sparsity=0.9), loss="sparse_categorical_crossentropy"),
    ],
    ids=lambda a: a.name,
)
def test_serialization_round_trip(attack):
    config = keras.saving.serialize_keras_object(attack)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(attack)
    assert clone.get_config() == attack.get_config()
    assert clone.norm == attack.norm


def test_minimal_perturbation_is_zero_at_zero_epsilon(cnn_and_data):
    model, x, y = cnn_and_data
    x_adv = ka.attacks.PGD(epsilon=0.0, steps=2)(model, x, y).numpy()
    np.testing.assert_array_equal(x_adv, x)
