"""BPDA and EOT attack wrappers: exact gradients, graph safety, serialization, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv
from keras_adv.attacks.wrappers import ExpectationModel, substitute_layers
from keras_adv.evaluation import planted
from tests.conftest import linear_model

W = np.array([[1.0, -1.0, 0.5], [-2.0, 2.0, 0.0], [0.5, 0.5, -1.0], [1.0, 0.0, 1.0]], "float32")


def _base():
    return linear_model(W, np.array([0.1, -0.2, 0.0], "float32"), (4,))


def _data():
    rng = np.random.default_rng(0)
    return (tf.constant(rng.uniform(0, 1, (6, 4)).astype("float32")), tf.constant([0, 1, 2, 0, 1, 2]))


def _name(model, cls):
    return next(l.name for l in model.layers if isinstance(l, cls))


def _grad(model, x, y):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(keras_adv.losses.crossentropy(y, model(x, training=False)))
    return tape.gradient(loss, x)


def test_bpda_through_rounding_is_the_gradient_of_the_identity():
    base = _base()
    model = planted.quantized(base, levels=8)
    x, y = _data()
    assert _grad(model, x, y) is None  # rounding: no gradient at all
    name = _name(model, planted.Quantize)
    bpda = keras_adv.attacks.BPDA(keras_adv.attacks.PGD(0.1, steps=3), substitutes=[name])
    wrapped = bpda.wrap_model(model)
    np.testing.assert_array_equal(wrapped(x).numpy(), model(x).numpy())  # real forward pass, exactly
    # Backward = identity: the gradient at x is the base model's gradient at round(x), exactly.
    xq = tf.round(x * 7.0) / 7.0
    np.testing.assert_array_equal(_grad(wrapped, x, y).numpy(), _grad(base, xq, y).numpy())


def test_bpda_with_a_given_approximation_and_nested_sequential():
    base = _base()
    inner = keras.Sequential([keras.Input((4,)), planted.Quantize(8, name="q"), base])
    inp = keras.Input((4,))
    model = keras.Model(inp, inner(inp))
    x, y = _data()
    twice = substitute_layers(model, {"q": lambda z: 2.0 * z})  # backward: d(2x)/dx = 2
    xq = tf.round(x * 7.0) / 7.0
    np.testing.assert_allclose(_grad(twice, x, y).numpy(), 2.0 * _grad(base, xq, y).numpy(), rtol=1e-6)


def test_bpda_attack_graph_safe_budget_and_serialization():
    model = planted.quantized(_base(), levels=8)
    x, y = _data()
    attack = keras_adv.attacks.BPDA(keras_adv.attacks.PGD(0.2, steps=3, seed=1),
                                    substitutes={_name(model, planted.Quantize): None})
    x_adv = tf.function(lambda a, b: attack(model, a, b, seed=tf.constant([1, 2])))(x, y)  # first call traced
    assert float(tf.reduce_max(tf.abs(x_adv - x))) <= 0.2 + 1e-6
    assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
    # It is a real attack: more loss than the clean input.
    loss = lambda z: float(tf.reduce_sum(keras_adv.losses.crossentropy(y, model(z))))
    assert loss(x_adv) > loss(x)
    assert attack.steps == 3 and attack.epsilon == 0.2 and attack.name == "BPDA(PGD)"
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert isinstance(again, keras_adv.attacks.BPDA) and again.get_config() == attack.get_config()


def test_bpda_replace_forward_exposes_the_logits():
    base = _base()
    model = planted.double_softmax(base, temperature=1000.0)
    x, _ = _data()
    names = [l.name for l in model.layers if isinstance(l, keras.layers.Softmax)]
    surrogate = substitute_layers(model, {n: None for n in names}, replace_forward=names)
    np.testing.assert_allclose(surrogate(x).numpy(), base(x).numpy(), rtol=1e-5)  # T·z lives in the saturated layer


def test_bpda_bad_arguments():
    model = planted.quantized(_base())
    with pytest.raises(ValueError, match="does not have"):
        substitute_layers(model, {"nope": None})
    with pytest.raises(TypeError, match="substitutes"):
        keras_adv.attacks.BPDA(keras_adv.attacks.PGD(0.1), substitutes="quantize")
    with pytest.raises(ValueError, match="replace_forward"):
        keras_adv.attacks.BPDA(keras_adv.attacks.PGD(0.1), substitutes=["a"], replace_forward=["b"])
    inp = keras.Input((4,))
    flat = keras.Model(inp, _base()(keras.layers.Dense(4, name="d")(inp)))
    shrink = keras.Model(inp, keras.layers.Dense(2, name="shrink")(inp))
    with pytest.raises(ValueError, match="changes the shape"):
        substitute_layers(shrink, {"shrink": None})

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        substitute_layers(Sub(), {"d": None})
    assert flat is not None


@keras.saving.register_keras_serializable(package="keras_adv_tests")
def _noise(x, seed):
    return x + 0.1 * tf.random.stateless_normal(tf.shape(x), seed)


def test_eot_gradient_is_the_average_of_per_sample_gradients():
    base = _base()
    x, _ = _data()
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4]), 5)
    eot = keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1), samples=5, transformation=_noise)
    expectation = eot.wrap_model(base, seeds=seeds)
    u = tf.constant(np.random.default_rng(1).normal(size=(6, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(u * expectation(x))
    g = tape.gradient(value, x)
    per_sample, outputs = [], []
    for i in range(5):
        with tf.GradientTape() as tape:
            tape.watch(x)
            p = tf.nn.softmax(base(_noise(x, seeds[i])))
            s = tf.reduce_sum(u * p)
        per_sample.append(tape.gradient(s, x).numpy())
        outputs.append(p.numpy())
    np.testing.assert_allclose(g.numpy(), np.mean(per_sample, 0), rtol=1e-5, atol=1e-7)
    # The decision averages predictions.
    np.testing.assert_allclose(expectation(x).numpy(), np.mean(outputs, 0), rtol=1e-6)


def test_eot_attack_on_a_randomised_model():
    model = planted.noisy(_base(), stddev=0.05)
    x, y = _data()
    attack = keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.2, steps=3, seed=0), samples=3)
    x_adv = tf.function(lambda a, b: attack(model, a, b, seed=tf.constant([1, 2])))(x, y)
    assert float(tf.reduce_max(tf.abs(x_adv - x))) <= 0.2 + 1e-6
    avg = ExpectationModel(model, 64)
    loss = lambda z: float(tf.reduce_sum(keras_adv.losses.crossentropy(y, avg(z))))
    assert loss(x_adv) > loss(x)
    t = keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1), samples=3, transformation=_noise, fixed_seeds=True)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(t))
    assert again.get_config() == t.get_config() and again.transformation is _noise
    with pytest.raises(ValueError, match="samples"):
        keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1), samples=0)
    # EOT outside, BPDA inside: each draw goes through the straight-through model.
    q = planted.quantized(planted.noisy(_base()), levels=8)
    both = keras_adv.attacks.BPDA(keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1, steps=2), samples=2),
                                  substitutes=[_name(q, planted.Quantize)])
    assert both(q, x, y).shape == x.shape


def test_eot_wrap_model_is_a_keras_model_that_predicts_evaluates_and_saves(tmp_path):
    # docs/evaluation.md: `eot.wrap_model(model)` is "the averaged classifier, to score decisions".
    base = _base()
    x, y = _data()
    seeds = tf.random.experimental.stateless_split(tf.constant([5, 6]), 3)
    eot = keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1), samples=3, transformation=_noise)
    averaged = eot.wrap_model(base, seeds=seeds)
    assert isinstance(averaged, keras.Model)
    expected = np.mean([tf.nn.softmax(base(_noise(x, seeds[i]))).numpy() for i in range(3)], 0)
    np.testing.assert_allclose(averaged(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(averaged.predict(x.numpy(), verbose=0), expected, rtol=1e-5)
    averaged.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    result = averaged.evaluate(x.numpy(), y.numpy(), verbose=0, return_dict=True)
    assert result["accuracy"] == pytest.approx(float((expected.argmax(-1) == y.numpy()).mean()))
    path = str(tmp_path / "averaged.keras")
    averaged.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again, ExpectationModel) and again.samples == 3 and again.transformation is _noise
    np.testing.assert_allclose(again(x).numpy(), expected, rtol=1e-6)
    # Without fixed seeds: a randomised model's draws, averaged; the average of many draws is stable.
    noisy = planted.noisy(base, stddev=0.05)
    many = keras_adv.attacks.EOT(keras_adv.attacks.PGD(0.1), samples=64).wrap_model(noisy)
    assert many.predict(x.numpy(), verbose=0).shape == (6, 3)
    np.testing.assert_allclose(many(x).numpy().sum(-1), 1.0, rtol=1e-5)


def test_margin_loss_values():
    logits = tf.constant([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0]])
    np.testing.assert_allclose(keras_adv.losses.margin(tf.constant([0, 0]), logits).numpy(), [-1.0, 3.0],
                               rtol=1e-6)
