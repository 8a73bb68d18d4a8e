"""Constrained tabular attacks: validity (independent checker), strength, gradient-free, ensembles, training."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv import attacks as A
from keras_adv.datasets import tabular
from keras_adv.domains import FeatureSpace, check_examples
from tests.attacks.conftest import graph_fn

EPS = 0.1


def _mlp(x_train, width=32):
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    return keras.Sequential([keras.Input((x_train.shape[1],)), norm,
                             keras.layers.Dense(width, activation="relu"), keras.layers.Dense(2)])


@pytest.fixture(scope="module")
def flows_model():
    """An undefended MLP on synthetic flows, and 48 correctly classified test records."""
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tabular.load_flows(2000)
    model = _mlp(x_train)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
    pred = model.predict(x_test, verbose=0).argmax(1)
    keep = np.flatnonzero(pred == y_test)[:48]
    assert np.mean(pred == y_test) > 0.9
    return model, x_test[keep], y_test[keep], tabular.flows_space()


def _robust(model, x_adv, y):
    return float(np.mean(model.predict(x_adv, verbose=0).argmax(1) == y))


TABLE = {
    "CAPGD": lambda s: A.CAPGD(EPS, domain=s, steps=20),
    "CAPGD-l2": lambda s: A.CAPGD(EPS, domain=s, steps=20, norm="l2", restarts=2),
    "Evolutionary": lambda s: A.Evolutionary(EPS, domain=s, generations=20, population=16),
    "ConstrainedAutoAttack": lambda s: A.ConstrainedAutoAttack(EPS, domain=s, steps=20, restarts=1,
                                                               generations=20, population=16),
}


def test_table_covers_every_constrained_attack():
    exported = {n for n in A.__all__ if isinstance(getattr(A, n), type)
                and issubclass(getattr(A, n), A.ConstrainedAttack) and n != "ConstrainedAttack"}
    covered = {type(f(tabular.flows_space())).__name__ for f in TABLE.values()}
    assert exported <= covered


SLOW_ROWS = {"CAPGD-l2", "ConstrainedAutoAttack"}  # the ensemble also runs in the default tests below


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ROWS else n
                                  for n in sorted(TABLE)])
def test_every_result_is_valid_deterministic_and_adversarial(name, flows_model):
    model, x, y, space = flows_model
    attack = TABLE[name](space)
    fn = graph_fn(attack, model)
    x_adv = fn(x, y)
    result = check_examples(space, x_adv, x, epsilon=EPS, norm=attack.norm)
    assert result.valid.all(), (name, result.summary(), result.messages)
    np.testing.assert_array_equal(fn(x, y), x_adv)
    assert _robust(model, x_adv, y) <= 0.6, name


@pytest.mark.parametrize("name", ["CAPGD", "Evolutionary"])
def test_a_zero_budget_leaves_every_record_unchanged(name, flows_model):
    # A one-hot switch is free for any eps > 0, but eps = 0 means no attack: the report's eps=0 column is clean.
    model, x, y, space = flows_model
    attack = next(f(space) for f in TABLE.values() if type(f(space)).__name__ == name)
    np.testing.assert_array_equal(attack(model, x, y, epsilon=0.0).numpy(), x)


def test_capgd_beats_plain_pgd_with_naive_repair(flows_model):
    model, x, y, space = flows_model
    capgd = A.CAPGD(EPS, domain=space, steps=20)(model, x, y).numpy()
    naive = _pgd_then_naive_repair(model, x, y, space, EPS)
    ok_naive = check_examples(space, naive, x, epsilon=EPS).valid
    success_naive = np.mean(ok_naive & (model.predict(naive, verbose=0).argmax(1) != y))
    success_capgd = np.mean(model.predict(capgd, verbose=0).argmax(1) != y)
    assert success_capgd >= success_naive
    assert success_capgd > 0.5


def _pgd_then_naive_repair(model, x, y, space, eps, steps=20):
    """Plain L∞ PGD on every feature in the scaled metric, then clip + round + re-one-hot."""
    scale = space.scale
    x_adv = tf.constant(x)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = keras.losses.sparse_categorical_crossentropy(y, model(x_adv), from_logits=True)
        g = tape.gradient(loss, x_adv)
        x_adv = x_adv + 2.5 * eps / steps * scale * tf.sign(g)
        x_adv = x + tf.clip_by_value((x_adv - x) / scale, -eps, eps) * scale
    out = np.clip(x_adv.numpy(), space.lower, space.upper)
    out[:, space.integer] = np.round(out[:, space.integer])
    for grp in space.categorical:
        out[:, grp] = np.eye(len(grp))[out[:, grp].argmax(1)]
    return out


def test_capgd_reaches_the_exact_corner_on_a_linear_model():
    # logits = [0, w·x]; class 1 with a large margin: the best valid point is x − ε·scale·sign(w) on mutable features
    w = np.array([1.0, -2.0, 3.0], "float32")
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.stack([np.zeros(3), w], axis=1).astype("float32"), np.array([0.0, 6.0], "float32")])
    space = FeatureSpace(lower=[-10, -10, -10], upper=[10, 10, 10], mutable=[True, True, False], scale=[2.0, 1.0, 1.0])
    x = np.array([[0.0, 0.0, 1.0], [1.0, -2.0, -1.0]], "float32")
    x_adv = A.CAPGD(0.5, domain=space, steps=10)(model, x, np.array([1, 1])).numpy()
    np.testing.assert_allclose(x_adv, x + np.array([[-1.0, 0.5, 0.0]]), atol=1e-6)


def test_evolutionary_breaks_a_model_without_gradient_where_capgd_cannot(flows_model):
    model, x, y, space = flows_model
    inputs = keras.Input((x.shape[1],))
    rounded = keras.layers.Lambda(lambda t: keras.ops.round(t))(inputs)  # a useless gradient
    masked = keras.Model(inputs, model(rounded))
    with pytest.raises(ValueError, match="no gradient"):
        A.CAPGD(EPS, domain=space, steps=5)(masked, x, y)
    x_adv = A.Evolutionary(EPS, domain=space, generations=20, population=16, seed=0)(masked, x, y).numpy()
    assert check_examples(space, x_adv, x, epsilon=EPS).valid.all()
    assert _robust(masked, x_adv, y) <= 0.5


@pytest.mark.slow  # three traced attacks (~15 s); benchmarks/tabular_robustness.py measures it at full size
def test_ensemble_is_at_least_as_strong_as_each_member(flows_model):
    model, x, y, space = flows_model
    kw = dict(domain=space, seed=0)
    caa = A.ConstrainedAutoAttack(EPS, steps=10, restarts=1, generations=10, population=16, **kw)
    robust = {"caa": _robust(model, caa(model, x, y).numpy(), y)}
    for member in caa.attacks:
        robust[member.name] = _robust(model, member(model, x, y).numpy(), y)
    assert robust["caa"] <= min(robust["capgd"], robust["evolutionary"]), robust


@pytest.mark.slow  # two traces of the ensemble (evaluator and generate): ~15 s
def test_ensemble_in_evaluate_robustness(flows_model):
    model, x, y, space = flows_model
    caa = A.ConstrainedAutoAttack(EPS, domain=space, steps=10, restarts=1, generations=10, population=8, seed=0)
    report = ka.evaluate_robustness(model, x[:16], y[:16], attacks={"caa": caa}, verbose=0)
    direct = _robust(model, caa.generate(model, x[:16], y[:16], verbose=0), y[:16])
    assert report.robust_accuracy("caa", EPS) == pytest.approx(direct)
    assert direct < 1.0
    json.dumps(report.to_dict())


def test_adversarial_training_on_a_table_keeps_examples_valid():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = tabular.load_breast_cancer()
    space = tabular.breast_cancer_space()
    model = ka.AdversarialModel(_mlp(x_train, 16), attack=A.CAPGD(0.05, domain=space, steps=5))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    x_adv = model.attack(model.base_model, x_test[:32], y_test[:32]).numpy()
    assert check_examples(space, x_adv, x_test[:32], epsilon=0.05).valid.all()


def test_dict_inputs_move_only_the_named_numeric_features():
    keras.utils.set_random_seed(0)
    x, y = tabular.make_flows(300)
    names = ["duration", "fwd_packets", "mean_packet_size"]
    cols = [tabular.FLOW_FEATURES.index(n) for n in names]
    data = {n: x[:, j:j + 1] for n, j in zip(names, cols)}
    data["proto"] = np.array(["tcp", "udp", "icmp"])[x[:, 8:11].argmax(1)][:, None]
    inputs = {n: keras.Input((1,), name=n) for n in names}
    inputs["proto"] = keras.Input((1,), name="proto", dtype="string")
    lookup = keras.layers.StringLookup(vocabulary=["tcp", "udp", "icmp"], output_mode="one_hot", num_oov_indices=0)
    norm = keras.layers.Normalization()
    norm.adapt(x[:, cols])
    h = keras.layers.Concatenate()([norm(keras.layers.Concatenate()([inputs[n] for n in names])), lookup(inputs["proto"])])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(8, activation="relu")(h)))
    space = FeatureSpace(lower=[0.01, 1, 40], upper=[600, 5000, 1500], integer=[False, True, False],
                         scale=[30, 200, 1460], names=names)
    adv = ka.AdversarialModel(model, attack=A.CAPGD(EPS, domain=space, steps=3))
    adv.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices(({k: tf.constant(v) for k, v in data.items()}, y)).batch(64)
    history = adv.fit(dataset, epochs=1, shuffle=False, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    x_adv = adv.attack(model, {k: tf.constant(v) for k, v in data.items()}, y)
    assert (x_adv["proto"].numpy().astype(str) == data["proto"].astype(str)).all()
    moved = np.mean(x_adv["duration"].numpy() != data["duration"])
    assert moved > 0.5
    flat, flat0 = space.flatten(x_adv).numpy(), space.flatten(data).numpy()
    assert check_examples(space, flat, flat0, epsilon=EPS).valid.all()
