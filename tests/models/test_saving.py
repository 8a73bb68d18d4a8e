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


def test_reading_the_schedule_values_warns_nothing(trained, tmp_path):
    """`adv_weight`, `epsilon` (read on load) and the seed state go through `Variable.numpy()`: NumPy 2 warns
    "__array__ implementation doesn't accept a copy keyword" when a tf.Variable is converted with np.asarray."""
    import warnings

    model, *_ = trained
    path = str(tmp_path / "m.keras")
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = keras.models.load_model(path)
        assert (reloaded.adv_weight, reloaded.epsilon) == (model.adv_weight, model.epsilon)
        assert abs(reloaded.adv_weight - 0.7) < 1e-6
    assert not [w for w in caught if "__array__" in str(w.message)], [str(w.message) for w in caught]


def test_export_for_serving_in_a_fresh_process(trained):
    model, x, _, tmp = trained
    path = os.path.join(tmp, "serving", "1")
    model.export(path, verbose=False)
    np.save(os.path.join(tmp, "x.npy"), x)  # this test's own copy: it must not depend on the one above
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


def test_export_prints_the_signature_and_lists_captures_only_when_verbose(tmp_path, capsys):
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
    model.export(str(tmp_path / "quiet"))
    out = capsys.readouterr().out
    assert out.strip().count("\n") == 0  # one line
    assert "inputs: float32[None, 4]" in out and "predictions: float32[None, 2]" in out
    assert "Captures" not in out
    model.export(str(tmp_path / "loud"), verbose=True)
    assert "Captures" in capsys.readouterr().out
    model.export(str(tmp_path / "silent"), verbose=False)
    assert capsys.readouterr().out == ""


_CUSTOM_OBJECTIVE = '''
import keras
from keras_adv.models import objectives


@objectives.register
class WeightedMix(objectives.Objective):
    """(1 - w)·L_clean + w·L_adv: a user objective with a hyper-parameter."""

    name = "weighted_mix_test"

    def __init__(self, w=0.5):
        self.w = w

    def get_config(self):
        return {"w": self.w}

    def __call__(self, *, y, y_clean, y_adv, sample_weight, compiled_loss, adv_weight, from_logits=None):
        clean = compiled_loss(y, y_clean, sample_weight)
        adv = compiled_loss(y, y_adv, sample_weight)
        return (1.0 - self.w) * clean + self.w * adv, clean, adv
'''


@pytest.mark.parametrize("objective", ["custom", "trades"])
def test_objective_survives_saving_in_a_fresh_process(tmp_path, objective):
    (tmp_path / "my_objectives.py").write_text(_CUSTOM_OBJECTIVE)
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import my_objectives
    finally:
        sys.path.remove(str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, size=16)
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    obj = my_objectives.WeightedMix(w=0.25) if objective == "custom" else "trades"
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2), objective=obj)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    if objective == "custom":
        np.testing.assert_allclose(hist["loss"][0], 0.75 * hist["clean_loss"][0] + 0.25 * hist["adv_loss"][0],
                                   rtol=1e-5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    out = run_in_fresh_process(f"""
        import json, sys, keras
        sys.path.insert(0, {str(tmp_path)!r})
        import keras_adv
        {"import my_objectives" if objective == "custom" else ""}
        m = keras.models.load_model({path!r})
        o = m._objective
        print(json.dumps({{"type": type(o).__name__, "name": m.objective,
                          "w": getattr(o, "w", None)}}))
    """)
    info = json.loads(out.strip().splitlines()[-1])
    if objective == "custom":
        assert info == {"type": "WeightedMix", "name": "weighted_mix_test", "w": 0.25}
    else:
        assert info == {"type": "Trades", "name": "trades", "w": None}


def test_export_of_a_model_with_named_inputs_serves_each_input(tmp_path, capsys):
    # A table fed as a dict of named features (docs/tabular.md, "Dict inputs"): one serving input per feature.
    import tensorflow as tf

    a, b = keras.Input((3,), name="duration"), keras.Input((2,), name="packets")
    for kind, inputs in (("dict", {"duration": a, "packets": b}), ("list", [a, b])):
        base = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
        model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
        model.export(str(tmp_path / kind))
        assert "serving_default(duration: float32[None, 3], packets: float32[None, 2])" in capsys.readouterr().out
        fn = tf.saved_model.load(str(tmp_path / kind)).signatures["serving_default"]
        assert sorted(fn.structured_input_signature[1]) == ["duration", "packets"]
        xa, xb = np.random.rand(4, 3).astype("float32"), np.random.rand(4, 2).astype("float32")
        served = fn(duration=tf.constant(xa), packets=tf.constant(xb))["predictions"].numpy()
        fed = {"duration": xa, "packets": xb} if kind == "dict" else [xa, xb]
        np.testing.assert_allclose(served, base.predict(fed, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="2 inputs .*duration, packets.*input_name"):
        model.export(str(tmp_path / "named"), input_name="x")
    assert not (tmp_path / "named").exists()


@pytest.mark.parametrize("path", ["robust.h5", "robust.HDF5"])
def test_legacy_h5_save_is_refused_before_writing(tmp_path, path):
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
    with pytest.raises(ValueError, match=r"`filepath` .*HDF5.*\.keras.*base_model\.save"):
        model.save(str(tmp_path / path))
    assert list(tmp_path.iterdir()) == []
    model.base_model.save(str(tmp_path / "net.h5"))  # the network alone goes to HDF5
    assert (tmp_path / "net.h5").exists()
