"""Virtual adversarial training: the power-iteration step against numpy, the objective, unlabeled data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.models import objectives
from tests.conftest import linear_model


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("power_iterations", [1, 2])
def test_power_iteration_equals_numpy_reference(power_iterations):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 3)).astype("float32")
    b = rng.normal(size=(3,)).astype("float32")
    model = linear_model(W, b, (6,))
    x = rng.uniform(0.3, 0.7, size=(4, 6)).astype("float32")
    y = np.zeros(4, "int64")  # unused by the KL loss: VAT needs no labels
    eps, xi = 0.05, 1e-2
    attack = ka.attacks.VirtualAdversarial(epsilon=eps, xi=xi, power_iterations=power_iterations)
    logits = model(x)
    loss = objectives.get("vat").attack_loss(logits, from_logits=True)
    seed = tf.constant([3, 4])
    x_adv = attack(model, x, y, seed=seed, loss=loss).numpy()

    # numpy: d ~ N(0, I) from the same stateless seed; d <- grad KL(p || q(x + xi d/|d|)) normalised
    p = _softmax(x @ W + b)
    d = tf.random.stateless_normal(x.shape, seed).numpy().astype("float64")
    for _ in range(power_iterations):
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        q = _softmax((x + xi * d) @ W + b)
        d = (q - p) @ W.T  # d KL(p||q(x'))/dx' for a linear softmax model
    r = eps * d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(x_adv, x + r, rtol=1e-3, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(x_adv - x, axis=1), eps, rtol=1e-4)


def test_vat_objective_terms():
    y_clean = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    y_adv = tf.constant([[1.0, 0.5], [0.0, 2.0]])
    y = tf.constant([0, 1])
    w = tf.constant([1.0, 0.0])  # the second example is "unlabeled"

    def compiled(yt, yp, sw):
        return tf.reduce_sum(ka.losses.crossentropy(yt, yp, from_logits=True) * sw) / 2.0

    total, sup, vat = objectives.get("vat")(y=y, y_clean=y_clean, y_adv=y_adv, sample_weight=w,
                                            compiled_loss=compiled, adv_weight=0.5, from_logits=True)
    p, q = _softmax(y_clean.numpy()), _softmax(y_adv.numpy())
    kl = (p * (np.log(p) - np.log(q))).sum(1)
    assert float(vat) == pytest.approx(kl.mean(), rel=1e-5)  # both examples, whatever their weight
    assert float(sup) == pytest.approx(-np.log(p[0, 0]) / 2, rel=1e-5)  # only the labeled one
    assert float(total) == pytest.approx(float(sup) + 0.5 * kl.mean(), rel=1e-5)


def test_with_unlabeled_and_unlabeled_examples_change_the_model():
    x_l, y_l = np.eye(4, dtype="float32")[:2] * 0.5, np.array([0, 1])
    x_u = np.full((3, 4), 0.25, "float32")
    x, y, w = ka.datasets.with_unlabeled(x_l, y_l, x_u, seed=0)
    assert x.shape == (5, 4) and w.sum() == 2 and set(y[w == 0]) == {0}
    with pytest.raises(ValueError, match="x_unlabeled"):
        ka.datasets.with_unlabeled(x_l, y_l, np.zeros((2, 3)))

    def train(x, y, w):
        keras.utils.set_random_seed(0)
        base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model = ka.AdversarialModel(base, attack=ka.attacks.VirtualAdversarial(epsilon=0.1, xi=0.01),
                                    objective="vat", seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
        model.fit(x, y, sample_weight=w, epochs=1, batch_size=5, shuffle=False, verbose=0)
        return base.get_weights()[0]

    # The VAT term uses the unlabeled examples: weights differ from training without them.
    with_u = train(x, y, w)
    order = w > 0
    without_u = train(x[order], y[order], w[order])
    assert not np.allclose(with_u, without_u)


def test_config_round_trip_and_bad_arguments():
    a = ka.attacks.VirtualAdversarial(epsilon=2.0, xi=0.1, power_iterations=2, seed=1)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(a))
    assert back.get_config() == a.get_config() and back.xi == 0.1
    with pytest.raises(ValueError, match="`xi` must be > 0"):
        ka.attacks.VirtualAdversarial(epsilon=1.0, xi=0.0)
    with pytest.raises(ValueError, match="`power_iterations` must be >= 1"):
        ka.attacks.VirtualAdversarial(epsilon=1.0, power_iterations=0)
    assert "vat" in objectives.available()
