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
