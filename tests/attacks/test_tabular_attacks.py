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
    bounds = json.loads(json.dumps(report.to_dict(), allow_nan=False))["bounds"]  # strict JSON
    # per-feature [lower, upper] lists, an unbounded side as "inf" (docs/evaluation.md, the to_dict schema)
    assert [[float(v) for v in side] for side in bounds] == [list(space.lower), list(space.upper)]
    assert "inf" in bounds[1] and np.isinf(space.upper).any()


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


# ------------------------------------------------------------- audit findings
def _category_table(n=300, seed=0):
    """A one-hot group (3 categories) and one numeric feature; the label is "category 0"."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, 3, n)
    x = np.column_stack([np.eye(3)[cat], rng.random(n)]).astype("float32")
    y = (cat == 0).astype("int64")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model, x, y, FeatureSpace(lower=0, upper=1, n_features=4, categorical=[[0, 1, 2]])


def test_capgd_switches_a_one_hot_category_at_a_small_budget():
    # A one-hot switch is outside the budget ("for any eps > 0, mutable one-hot groups may switch category"),
    # so CAPGD must explore it at eps = 0.05: one-hot coordinates once moved by the step 2 eps and argmax
    # snapped them back, so no switch happened below eps = 0.25 (accuracy stayed 1.0).
    model, x, y, space = _category_table()
    assert _robust(model, x, y) > 0.95
    eps = 0.05
    x_adv = A.CAPGD(eps, domain=space, steps=10, seed=0)(model, x, y).numpy()
    result = check_examples(space, x_adv, x, epsilon=eps)
    assert result.valid.all(), result.messages
    assert np.abs(x_adv[:, 3] - x[:, 3]).max() <= eps + 1e-6  # the budget still holds on the numeric feature
    assert (x_adv[:, :3] != x[:, :3]).any(axis=1).mean() > 0.5
    assert _robust(model, x_adv, y) < 0.2


def test_capgd_restarts_start_from_random_categories():
    space = FeatureSpace(lower=0, upper=1, n_features=4, categorical=[[0, 1, 2]])
    x = tf.constant(np.tile([[1.0, 0.0, 0.0, 0.5]], (300, 1)).astype("float32"))
    x0 = space.random_start(x, 0.05, ka.norms.Linf(), tf.constant([1, 2])).numpy()
    assert check_examples(space, x0, x.numpy(), epsilon=0.05).valid.all()
    counts = np.bincount(x0[:, :3].argmax(1), minlength=3)
    assert counts.min() > 60, counts  # roughly uniform over the three categories


@pytest.mark.parametrize("name", ["Evolutionary", "ConstrainedAutoAttack"])
def test_single_sigmoid_unit_is_attacked_like_capgd_does(name):
    # Evolutionary (and the ensemble, after its CAPGD member ran) once refused a (batch, 1) sigmoid output.
    rng = np.random.default_rng(0)
    x = rng.random((128, 3)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    pred = lambda v: (model.predict(v, verbose=0)[:, 0] > 0.5).astype("int64")  # noqa: E731
    keep = pred(x) == y
    x, y = x[keep][:48], y[keep][:48]
    space = FeatureSpace(lower=0, upper=1, n_features=3)
    attack = (A.Evolutionary(0.2, domain=space, generations=5, population=8, seed=0) if name == "Evolutionary"
              else A.ConstrainedAutoAttack(0.2, domain=space, steps=5, restarts=1, generations=5, population=8, seed=0))
    x_adv = attack(model, x, y).numpy()
    assert check_examples(space, x_adv, x, epsilon=0.2).valid.all()
    assert np.mean(pred(x_adv) == y) < 0.9  # records near the boundary are broken


def _no_gradient_table_model():
    rng = np.random.default_rng(0)
    x = rng.random((32, 3)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int64")
    inputs = keras.Input((3,))
    rounded = keras.layers.Lambda(lambda t: keras.ops.round(t * 4.0) / 4.0)(inputs)  # no input gradient
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(rounded))
    dense.set_weights([np.array([[-4.0, 4.0], [0, 0], [0, 0]], "float32"), np.array([2.0, -2.0], "float32")])
    return model, x, y, FeatureSpace(lower=0, upper=1, n_features=3)


def test_caa_falls_back_to_its_gradient_free_member_without_input_gradient():
    model, x, y, space = _no_gradient_table_model()
    with pytest.raises(ValueError, match="no gradient.*keras_adv.attacks.Evolutionary"):
        A.CAPGD(0.2, domain=space, steps=3)(model, x, y)
    caa = A.ConstrainedAutoAttack(0.2, domain=space, steps=3, restarts=1, generations=5, population=8, seed=0)
    with pytest.warns(UserWarning, match=r"no gradient.*\['capgd'\].*\['evolutionary'\] only"):
        x_adv = caa(model, x, y).numpy()
    assert check_examples(space, x_adv, x, epsilon=0.2).valid.all()
    clean = model.predict(x, verbose=0).argmax(1) == y
    assert np.mean(model.predict(x_adv, verbose=0).argmax(1) == y) < clean.mean()
    with pytest.raises(ValueError, match=r"gradient-free attack such as keras_adv.attacks.Evolutionary"):
        ka.evaluate_robustness(model, x, y, attacks={"capgd": A.CAPGD(0.2, domain=space, steps=3)}, verbose=0)


def test_dict_inputs_to_generate_and_evaluate_robustness_are_a_clear_error():
    names = ["a", "b"]
    space = FeatureSpace(lower=[0, 0], upper=[1, 1], names=names)
    inputs = {k: keras.Input((1,), name=k) for k in names}
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()([inputs["a"], inputs["b"]])))
    x = {k: np.full((8, 1), 0.5, "float32") for k in names}
    y = np.zeros(8, "int64")
    attack = A.CAPGD(0.1, domain=space, steps=2)
    message = r"`data` holds a dict of named inputs \('a', 'b'\).*attack\(model, \{name: tensor"
    with pytest.raises(TypeError, match=message):
        attack.generate(model, x, y, verbose=0)
    with pytest.raises(TypeError, match=message):
        ka.evaluate_robustness(model, x, y, attacks={"capgd": attack}, verbose=0)
    with pytest.raises(TypeError, match=message):  # once "`data` must be batched", which it was
        ka.evaluate_robustness(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                               attacks={"capgd": attack}, verbose=0)


@pytest.mark.parametrize("case", ["bounds", "integer", "relation"])
def test_fit_refuses_records_outside_the_feature_space_naming_the_feature(case):
    # fit once gave image advice ("x / 255") for out-of-bounds records and silently trained on records
    # breaking an integer feature or a relation; it now runs the space's own check before any step.
    space = FeatureSpace(lower=[0, 0, 0], upper=[100, 1, 1], integer=[True, False, False],
                         names=["n_packets", "ratio", "share"],
                         relations=[ka.domains.LessEqual(left=[2], right=[1])])
    good = np.array([[5, 0.5, 0.2], [7, 0.4, 0.1]], "float32")
    bad = good.copy()
    if case == "bounds":
        bad[1, 0], message = 250, r"lies outside the FeatureSpace: feature 'n_packets' \(index 0\) of example 1"
    elif case == "integer":
        bad[0, 0], message = 5.5, r"has a non-integer value 5.5 in integer feature 'n_packets' \(index 0\)"
    else:
        bad[1, 2], message = 0.9, r"violates relation `relations`\[0\]"
    y = np.zeros(2, "int64")
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = ka.AdversarialModel(base, attack=A.CAPGD(0.1, domain=space, steps=2))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in base.get_weights()]
    with pytest.raises(ValueError, match="`x` " + message):
        model.fit(bad, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`validation_data x` " + message):
        model.fit(good, y, validation_data=(bad, y), epochs=1, verbose=0)
    for w, w0 in zip(base.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


# ------------------------------------------------------------------ monotone features
MONOTONE = {
    "CAPGD": lambda s: A.CAPGD(EPS, domain=s, steps=10, restarts=2, seed=1),
    "CAPGD-l2": lambda s: A.CAPGD(EPS, domain=s, steps=10, restarts=2, norm="l2", seed=1),
    "Evolutionary": lambda s: A.Evolutionary(EPS, domain=s, generations=15, population=16, seed=1),
    "ConstrainedAutoAttack": lambda s: A.ConstrainedAutoAttack(EPS, domain=s, steps=10, restarts=2, generations=10,
                                                               population=12, seed=1),
}


def _monotone_problem(monotone=None):
    """A linear model whose gradient pushes the monotone features the wrong way.

    Class 1 has logit w·x + b (class 0: 0). The attack lowers w·x: it wants to *decrease* packets (0, integer)
    and bytes (1), which may only increase, and to *increase* idle (2), which may only decrease; only the free
    feature 3 (range 10, so ε = 0.1 moves it by 1 and the logit by 5) may help it. Every record has a margin
    below 2, so feature 3 alone breaks it.
    """
    w = np.array([1.0, 2.0, -2.0, 5.0], "float32")
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.stack([np.zeros(4), w], axis=1).astype("float32"), np.array([0.0, 0.0], "float32")])
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(2, 8, 12), rng.uniform(2, 8, 12), rng.uniform(2, 8, 12),
                         rng.uniform(3, 7, 12)]).astype("float32")
    # shift the idle feature so that every margin lies in (0.3, 1.8)
    margin = rng.uniform(0.3, 1.8, 12).astype("float32")
    x[:, 2] = (x @ np.array([1, 2, 0, 5], "float32") - margin) / 2.0
    space = FeatureSpace(lower=[0, 0, -100, 0], upper=[10, 10, 100, 10], integer=[True, False, False, False],
                         scale=[10, 10, 10, 10], names=["packets", "bytes", "idle", "free"], monotone=monotone)
    y = np.ones(12, "int64")
    assert (model.predict(x, verbose=0).argmax(1) == 1).all()
    return model, x, y, space


@pytest.mark.parametrize("name", sorted(MONOTONE))
def test_monotone_features_never_move_the_wrong_way(name):
    model, x, y, space = _monotone_problem({"packets": "increase", "bytes": "increase", "idle": "decrease"})
    attack = MONOTONE[name](space)
    x_adv = attack(model, x, y).numpy()
    r = check_examples(space, x_adv, x, epsilon=EPS, norm=attack.norm)
    assert r.valid.all(), (name, r.summary(), r.messages)
    assert (x_adv[:, :2] >= x[:, :2]).all() and (x_adv[:, 2] <= x[:, 2]).all()
    assert (x_adv != x).any(axis=1).mean() > 0.5, name
    # the free feature still breaks records (Evolutionary, gradient-free, with few generations: most of them)
    assert _robust(model, x_adv, y) <= (0.5 if name == "Evolutionary" else 0.0), name


def test_without_monotone_the_same_attack_moves_those_features_the_wrong_way():
    # the constraint above binds: unconstrained, CAPGD lowers packets/bytes and raises idle
    model, x, y, space = _monotone_problem()
    x_adv = MONOTONE["CAPGD"](space)(model, x, y).numpy()
    assert (x_adv[:, 1] < x[:, 1]).any() and (x_adv[:, 2] > x[:, 2]).any()
