"""The compatibility module: version floor message, fused training step, per-replica seeds."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv import _compat
from tests.conftest import run_in_fresh_process


def test_version_tuple():
    assert _compat.version_tuple("3.15.1") == (3, 15, 1)
    assert _compat.version_tuple("2.16.0rc0") == (2, 16, 0)
    assert _compat.version_tuple("3.8") == (3, 8, 0)


def test_old_keras_fails_on_import_with_one_line_naming_the_floor():
    out = run_in_fresh_process("""
        import os
        os.environ.pop("KERAS_ADV_SKIP_VERSION_CHECK", None)
        import keras
        keras.__version__ = "2.99.0"
        try:
            import keras_adv
        except ImportError as e:
            print("ERR:" + str(e))
    """)
    line = out.strip().splitlines()[-1]
    assert line.startswith("ERR:keras_adv needs keras>=" + _compat.MIN_KERAS)
    assert "found keras 2.99.0" in line


def _dense_model(seed, batch_norm=False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6,)), keras.layers.Dense(8, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    return keras.Sequential(layers + [keras.layers.Dense(3)])


@pytest.mark.parametrize("objective", ["ce", "trades", "mart"])
def test_fused_training_step_equals_two_passes(objective):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32)
    weights, logs = [], []
    for fuse in (True, False):
        base = _dense_model(3)
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2, seed=1), seed=5,
                                    objective=objective, fuse_passes=fuse, adv_weight=2.0)
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        assert model._fuses() is fuse
        logs.append(model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history)
        weights.append(base.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in logs[0]:
        np.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5, atol=1e-6)


def test_fusing_is_automatic_only_without_batch_norm_on_an_accelerator():
    attack = ka.attacks.FGSM(epsilon=0.1)
    assert ka.AdversarialModel(_dense_model(0), attack=attack)._fuses() is _compat.has_accelerator()
    assert not ka.AdversarialModel(_dense_model(0, batch_norm=True), attack=attack)._fuses()
    assert ka.AdversarialModel(_dense_model(0, batch_norm=True), attack=attack, fuse_passes=True)._fuses()
    # Pure adversarial training differentiates only the adversarial pass: nothing to fuse.
    assert not ka.AdversarialModel(_dense_model(0), attack=attack, objective="madry")._fuses()
    with pytest.raises(ValueError, match="fuse_passes"):
        ka.AdversarialModel(_dense_model(0), attack=attack, fuse_passes="yes")


def test_batch_norm_model_trains_fused_and_unfused():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32)
    for fuse in (True, False):
        model = ka.AdversarialModel(_dense_model(0, batch_norm=True), attack=ka.attacks.FGSM(epsilon=0.1),
                                    fuse_passes=fuse)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
        assert np.isfinite(hist["loss"][0])


def test_replicas_draw_different_random_starts():
    out = run_in_fresh_process("""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_adv as ka
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
            model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=1, step_size=0.01), seed=3)
            model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = tf.fill([4, 6], 0.5)
        y = tf.zeros([4], tf.int64)
        @tf.function
        def craft():
            return strategy.run(lambda: model._craft(model.attack, x, y, model._epsilon,
                                                     model._attack_loss(model.attack)))
        per_replica = strategy.experimental_local_results(craft())
        a, b = (v.numpy() for v in per_replica)
        print(json.dumps({"max_diff": float(np.abs(a - b).max()),
                          "in_budget": bool(np.abs(a - 0.5).max() <= 0.1 + 1e-6)}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["in_budget"]
    assert info["max_diff"] > 1e-3  # same inputs, different noise on each replica


def test_xla_attack_option_gives_the_same_training_step():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.2, 0.8, size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    weights = []
    for jit in (False, True):
        base = _dense_model(4)
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=3, random_start=False),
                                    jit_compile_attack=jit)
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        weights.append(base.get_weights())
        assert model.get_config().get("jit_compile_attack", False) is jit
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_whole_step_xla_is_refused_and_auto_stays_in_graph_mode_even_with_a_gpu(monkeypatch):
    """Keras' jit_compile="auto" picks XLA for the whole step when a GPU is visible (measured on an H100:
    benchmarks/results/gpu.json), and XLA drops the step's Assert-based input checks."""
    model = ka.AdversarialModel(_dense_model(4), attack=ka.attacks.PGD(epsilon=0.1, steps=2))
    with pytest.raises(ValueError, match="jit_compile=True.*jit_compile_attack=True"):
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    with pytest.raises(ValueError, match="`jit_compile` must be 'auto' or False"):
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile="yes")
    # Pretend a GPU is visible, as Keras' auto resolution sees it: a plain keras.Model resolves to XLA.
    real = tf.config.list_physical_devices
    fake_gpu = type("Device", (), {"device_type": "GPU", "name": "/physical_device:GPU:0"})()
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda device_type=None: real(device_type) + ([fake_gpu] if device_type is None else []))
    plain = _dense_model(4)
    plain.compile("sgd", "mse")
    assert plain.jit_compile is True  # what the wrapper must not inherit
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.jit_compile is False


def test_xla_attack_keeps_the_attack_input_check_and_the_weights():
    """Under jit_compile_attack the attack's bounds check still fires (XLA alone would drop it)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 0.8, size=(32, 6)).astype("float32")
    x[20, 2] = 1.5  # outside bounds=(0, 1), in the second batch of a stream
    y = rng.integers(0, 3, size=32)
    base = _dense_model(4)
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), jit_compile_attack=True)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.build((None, 6))
    before = base.get_weights()
    with pytest.raises(ValueError, match="must lie inside bounds"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(before, base.get_weights()):
        np.testing.assert_array_equal(a, b)
