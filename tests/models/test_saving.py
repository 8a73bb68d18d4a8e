"""Save/reload and SavedModel export, checked in fresh processes."""

import json
import os

import keras
import numpy as np
import pytest

import keras_adv as ka
from tests.conftest import run_in_fresh_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=64)
    base = ka.models.presets.small_cnn(width=4)
    model = ka.AdversarialModel(
        base,
        attack=ka.attacks.PGD(epsilon=0.15, steps=3, norm="linf", seed=7),
        adv_weight=0.7,
        eval_attack=ka.attacks.PGD(epsilon=0.2, steps=5, restarts=2),
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model, x, y, tmp_path_factory.mktemp("saving")


def test_save_and_load_in_a_fresh_process(trained):
    model, x, y, tmp = trained
    path = os.path.join(tmp, "robust.keras")
    model.save(path)
    np.save(os.path.join(tmp, "x.npy"), x)
    expected = model.predict(x, verbose=0)
    out = run_in_fresh_process(f"""
        import json, numpy as np, keras
        import keras_adv
        m = keras.models.load_model({path!r})
        x = np.load({os.path.join(tmp, 'x.npy')!r})
        np.save({os.path.join(tmp, 'pred.npy')!r}, m.predict(x, verbose=0))
        print(json.dumps({{"type": type(m).__name__, "attack": m.attack.get_config(),
                          "eval_attack": m.eval_attack.get_config(), "adv_weight": m.adv_weight,
                          "epsilon": m.epsilon, "compiled": m.compiled,
                          "logs": sorted(m.evaluate(x, np.zeros(len(x), "int64"), return_dict=True, verbose=0))}}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_allclose(np.load(os.path.join(tmp, "pred.npy")), expected, atol=1e-5)
    assert info["type"] == "AdversarialModel"
    assert info["attack"] == model.attack.get_config()
    assert info["eval_attack"] == model.eval_attack.get_config()
    assert info["adv_weight"] == pytest.approx(0.7)
    assert info["epsilon"] == pytest.approx(0.15)
    assert info["compiled"]
    assert info["logs"] == sorted(["loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy", "robustness_margin"])


def test_model_checkpoint_round_trip(trained, tmp_path):
    model, x, y, _ = trained
    path = str(tmp_path / "ckpt.keras")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(path)])
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    # Training resumes from the checkpoint with optimizer state.
    hist = reloaded.fit(x, y, epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0])
    assert reloaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy() + 2


def test_export_for_serving_in_a_fresh_process(trained):
    model, x, _, tmp = trained
    path = os.path.join(tmp, "serving", "1")
    model.export(path, verbose=False)
    expected = model.predict(x, verbose=0)
    out = run_in_fresh_process(f"""
        import json, numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        fn = loaded.signatures["serving_default"]
        _, kwargs = fn.structured_input_signature
        name = list(kwargs)[0]
        x = np.load({os.path.join(tmp, 'x.npy')!r})
        out = fn(**{{name: tf.constant(x)}})
        np.save({os.path.join(tmp, 'served.npy')!r}, out["predictions"].numpy())
        print(json.dumps({{"inputs": list(kwargs), "outputs": list(out),
                          "variables": sorted(v.name for v in loaded.variables)}}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    assert info["inputs"] == ["image"]  # the base model's input name, not args_0
    assert info["outputs"] == ["predictions"]
    np.testing.assert_allclose(np.load(os.path.join(tmp, "served.npy")), expected, atol=1e-5)
    # Inference graph only: the base model's weights, no optimizer, attack or schedule state.
    assert len(info["variables"]) == len(model.base_model.weights)
    assert not any("adam" in v or "epsilon" in v or "adv_weight" in v for v in info["variables"])


def test_export_names_a_generic_input_inputs(tmp_path):
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
    model.export(str(tmp_path / "m"), verbose=False)
    import tensorflow as tf

    fn = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["inputs"]
