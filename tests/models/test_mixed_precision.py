"""Mixed precision: training works and the perturbation (float32) respects the budget exactly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv.models.presets import small_cnn


class _Spy(ka.attacks.PGD):
    """PGD that checks, inside the compiled train step, that x_adv is float32 and within budget."""

    def __call__(self, model, x, y, **kwargs):
        x_adv = super().__call__(model, x, y, **kwargs)
        eps = tf.cast(kwargs["epsilon"], tf.float32)
        dist = tf.reduce_max(tf.abs(x_adv - tf.cast(x, tf.float32)))
        checks = [tf.debugging.assert_equal(tf.constant(x_adv.dtype == tf.float32), True),
                  tf.debugging.assert_less_equal(dist, eps, message="budget exceeded")]
        with tf.control_dependencies(checks):
            return tf.identity(x_adv)


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_training_keeps_budget(policy, digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    keras.utils.set_random_seed(0)
    base = small_cnn((8, 8, 1), 10, width=8)
    assert base.layers[1].compute_dtype in ("float16", "bfloat16")
    eps = 0.2
    attack = _Spy(epsilon=eps, steps=3, seed=0)
    model = ka.AdversarialModel(base, attack=attack, objective="trades", adv_weight=2.0, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    for key in ("loss", "clean_loss", "adv_loss"):
        assert np.all(np.isfinite(hist.history[key])), key
    assert hist.history["loss"][-1] < hist.history["loss"][0]  # it learns
    assert all(w.dtype == "float32" for w in base.trainable_weights)  # float32 master weights
    # Outside training, the same exactness on a half-precision model.
    x_adv = attack(base, x[:64], y[:64], epsilon=eps)
    assert x_adv.dtype == tf.float32
    assert tf.reduce_max(tf.abs(x_adv - x[:64])).numpy() <= np.float32(eps)  # exact in float32
    assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_mixed_precision_free_training(policy, digits):
    (x, y), _ = digits
    base = small_cnn((8, 8, 1), 10, width=8)
    model = ka.FreeAdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1), replays=2, seed=0)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    hist = model.fit(x[:256], y[:256], batch_size=64, epochs=2, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
