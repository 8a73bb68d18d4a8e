"""Free adversarial training: one backward pass feeds weights and perturbation."""

import keras
import numpy as np
import pytest

import keras_adv as ka
from keras_adv.models import FreeAdversarialModel
from tests.conftest import linear_model


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _free_reference(W, b, x, y, eps, lr, replays):
    """Numpy Free-AT on a linear softmax model, SGD, L∞, zero start, step ε."""
    W, b, delta = W.copy(), b.copy(), np.zeros_like(x)
    onehot = np.eye(W.shape[1])[y]
    for _ in range(replays):
        xa = x + delta
        g = (_softmax(xa @ W + b) - onehot) / len(x)   # d mean-CE / d logits
        gW, gb, gx = xa.T @ g, g.sum(0), g @ W.T       # one backward pass, all three gradients
        W, b = W - lr * gW, b - lr * gb
        delta = np.clip(np.clip(delta + eps * np.sign(gx), -eps, eps) + x, 0, 1) - x
    return W, b


@pytest.mark.parametrize("replays", [1, 3])
def test_free_step_matches_numpy(replays):
    rng = np.random.default_rng(0)
    W0, b0 = rng.normal(size=(5, 3)), rng.normal(size=3) * 0.1
    x = rng.uniform(0.1, 0.9, size=(4, 5))
    y = np.array([0, 1, 2, 1])
    base = linear_model(W0, b0, (5,))
    model = FreeAdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), replays=replays)
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x.astype("float32"), y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    W, b = _free_reference(W0, b0, x, y, 0.1, 0.5, replays)
    got_W, got_b = base.get_weights()
    np.testing.assert_allclose(got_W, W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_b, b, rtol=1e-4, atol=1e-5)
    assert int(model.optimizer.iterations.numpy()) == replays


def test_free_training_on_digits_gains_robustness(digits):
    (x, y), (xt, yt) = digits
    from keras_adv.models.presets import small_cnn

    keras.utils.set_random_seed(0)
    base = small_cnn((8, 8, 1), 10, width=8)
    model = FreeAdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), replays=4, seed=0,
                                 eval_attack=ka.attacks.PGD(epsilon=0.1, steps=10, seed=0))
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    ev = model.evaluate(xt, yt, verbose=0, return_dict=True)
    assert ev["accuracy"] > 0.85
    assert ev["adv_accuracy"] > 0.5  # robust accuracy under PGD-10 (stronger than the training attack)
    restored = FreeAdversarialModel.from_config(model.get_config())
    assert restored.replays == 4 and restored.objective == "madry"


def test_free_rejects_bad_replays():
    base = linear_model(np.ones((2, 2)), np.zeros(2), (2,))
    with pytest.raises(ValueError, match="replays"):
        FreeAdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), replays=0)
