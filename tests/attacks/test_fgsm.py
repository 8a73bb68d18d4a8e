"""FGSM against closed forms on a linear model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from tests.conftest import linear_model

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 3)).astype("float32")
B = RNG.normal(size=(3,)).astype("float32")


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _ce_input_gradient(x, y):
    """d CE(softmax(xW+b), y) / dx = (p - onehot(y)) Wᵀ."""
    p = _softmax(x @ W + B)
    return (p - np.eye(3)[y]) @ W.T


@pytest.fixture
def model():
    return linear_model(W, B, (6,))


def _data(n=12):
    x = RNG.uniform(0.3, 0.7, size=(n, 6)).astype("float32")
    y = RNG.integers(0, 3, size=n)
    return x, y


def test_linf_step_equals_closed_form(model):
    x, y = _data()
    eps = 0.1
    expected = np.clip(x + eps * np.sign(_ce_input_gradient(x, y)), 0, 1)
    got = ka.attacks.FGSM(epsilon=eps)(model, x, y).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_l2_step_equals_closed_form(model):
    x, y = _data()
    eps = 0.2
    g = _ce_input_gradient(x, y)
    expected = np.clip(x + eps * g / np.linalg.norm(g, axis=1, keepdims=True), 0, 1)
    got = ka.attacks.FGSM(epsilon=eps, norm="l2")(model, x, y).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_targeted_step_descends_towards_target(model):
    x, _ = _data()
    target = np.full(len(x), 2)
    eps = 0.1
    expected = np.clip(x - eps * np.sign(_ce_input_gradient(x, target)), 0, 1)
    got = ka.attacks.FGSM(epsilon=eps, targeted=True)(model, x, target).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_probability_outputs_give_the_same_step_as_logits(model):
    x, y = _data()
    probs = keras.Sequential([model, keras.layers.Softmax()])
    a = ka.attacks.FGSM(epsilon=0.1)(model, x, y).numpy()
    b = ka.attacks.FGSM(epsilon=0.1)(probs, x, y).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_one_hot_labels_equal_integer_labels(model):
    x, y = _data()
    a = ka.attacks.FGSM(epsilon=0.1)(model, x, y).numpy()
    b = ka.attacks.FGSM(epsilon=0.1)(model, x, np.eye(3, dtype="float32")[y]).numpy()
    np.testing.assert_array_equal(a, b)


def test_custom_loss_is_used(model):
    x, y = _data()
    # Maximising the logit of class 0 moves x along sign(W[:, 0]) regardless of y.
    loss = lambda y_true, y_pred: y_pred[:, 0]  # noqa: E731
    got = ka.attacks.FGSM(epsilon=0.05, loss=loss)(model, x, y).numpy()
    np.testing.assert_allclose(got, np.clip(x + 0.05 * np.sign(W[:, 0]), 0, 1), atol=1e-6)


def test_fgsm_rs_stays_in_budget_and_is_random_but_seeded(model):
    x, y = _data(64)
    attack = ka.attacks.FGSM(epsilon=0.1, random_start=True, step_size=0.125, seed=3)
    a = attack(model, x, y, seed=tf.constant([1, 1])).numpy()
    b = attack(model, x, y, seed=tf.constant([1, 1])).numpy()
    c = attack(model, x, y, seed=tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.abs(a - x).max() <= 0.1 + 1e-6
    # A 1.25ε step from a random start is clipped back onto the ball: many coordinates sit at ±ε.
    assert np.mean(np.isclose(np.abs(a - x), 0.1, atol=1e-6)) > 0.5
