"""AdversarialModel under tf.distribute.MirroredStrategy with two logical CPU devices."""

import json

from tests.conftest import run_in_fresh_process


def test_mirrored_strategy_two_logical_cpus():
    out = run_in_fresh_process("""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_adv as ka
        keras.utils.set_random_seed(0)
        (x, y), (xt, yt) = ka.datasets.load_digits()
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            base = ka.models.presets.small_cnn(width=8)
            model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=3))
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
        hist = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history
        logs = model.evaluate(xt, yt, return_dict=True, verbose=0)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "hist": hist, "logs": logs}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["replicas"] == 2
    hist, logs = info["hist"], info["logs"]
    assert hist["loss"][-1] < hist["loss"][0]
    # The logged total is the real, unscaled total (not halved by the replica count).
    for h_loss, c, a in zip(hist["loss"], hist["clean_loss"], hist["adv_loss"]):
        assert abs(h_loss - (c + a)) < 1e-4 * max(1.0, h_loss)
    assert hist["clean_loss"][0] > 1.0  # ~ln(10) at the start: not divided by 2 replicas
    assert logs["accuracy"] > 0.7 and logs["adv_accuracy"] < logs["accuracy"]


def test_a_base_model_built_outside_the_scope_is_named_before_anything_changes():
    """Keras would fail inside `fit` ("`colocate_vars_with` must only be passed a variable created in this
    tf.distribute.Strategy.scope()"); compile names the argument and the fix instead."""
    import keras
    import numpy as np
    import pytest
    import tensorflow as tf

    import keras_adv as ka

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    base = ka.models.presets.small_cnn(width=4)
    before = [w.numpy().copy() for w in base.weights]
    with strategy.scope():
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2))
        with pytest.raises(ValueError, match=r"`base_model` was built outside `strategy.scope\(\)`.*conv2d"):
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, base.weights))
    with strategy.scope():  # built inside: compiles (training under a strategy: the test above)
        base = ka.models.presets.small_cnn(width=4)
        model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.compiled
