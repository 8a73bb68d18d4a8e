"""Crafted `.keras` files: nothing from a file is executed or imported beyond the registries (docs/trust_model.md)."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_adv as ka
from keras_adv.utils.trust import UntrustedConfigError

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model = ka.AdversarialModel(base, attack=ka.attacks.PGD(epsilon=0.1, steps=2),
                                eval_attack=ka.attacks.FGSM(epsilon=0.1))
    model.compile("sgd", SPARSE)
    path = str(folder / "ok.keras")
    model.save(path)
    return folder, path, base


def _craft(saved, name, edit):
    """A copy of the saved model whose config.json was edited by `edit(config)`."""
    folder, path, _ = saved
    out_path = str(folder / f"{name}.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out_path, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config["config"])
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return out_path


def _canary_lambda(path):
    """A Lambda layer that, if it were ever executed, would create `path`."""
    return keras.layers.Lambda(lambda x: (open(path, "w").close(), x)[1])


def _lambda_config(canary):
    layer = _canary_lambda(canary)
    return keras.saving.serialize_keras_object(layer)


def _set(field, value):
    def edit(config):
        config[field] = value
    return edit


def _attack_config(key, value, field="attack"):
    def edit(config):
        config[field]["config"][key] = value
    return edit


def test_the_untouched_file_loads_in_safe_mode(saved):
    _, path, base = saved
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).uniform(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), base.predict(x, verbose=0), rtol=1e-6)


def test_lambda_in_the_base_model_is_refused_and_never_run(tmp_path):
    canary = str(tmp_path / "ran")
    base = keras.Sequential([keras.Input((4,)), _canary_lambda(canary), keras.layers.Dense(3)])
    model = ka.AdversarialModel(base, attack=ka.attacks.FGSM(epsilon=0.1))
    if os.path.exists(canary):
        os.remove(canary)  # building the model ran it once, legitimately
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    os.remove(canary) if os.path.exists(canary) else None
    with pytest.raises(ValueError, match=r"(?s)Lambda.*safe_mode"):
        keras.models.load_model(path, safe_mode=True)
    assert not os.path.exists(canary)


CRAFTED = [
    # (id, edit of the AdversarialModel config, expected error, message)
    ("lambda_as_attack", lambda c, canary: _set("attack", _lambda_config(canary))(c), UntrustedConfigError,
     r"`attack` names the class 'Lambda', which is not one of keras_adv's attacks"),
    ("lambda_as_eval_attack", lambda c, canary: _set("eval_attack", _lambda_config(canary))(c),
     UntrustedConfigError, r"`eval_attack` names the class 'Lambda'"),
    ("unregistered_attack_class", lambda c, canary: c["attack"].update(
        module="evil", class_name="Evil", registered_name="evil>Evil"), UntrustedConfigError,
     r"`attack` names the class 'evil>Evil'"),
    ("unregistered_layer_in_base_model", lambda c, canary: c["base_model"]["config"]["layers"][1].update(
        module="evil", class_name="Evil", registered_name="evil>Evil"), UntrustedConfigError,
     r"`base_model` could not be loaded: Could not locate class 'Evil'"),
    ("function_smuggled_as_attack_loss", lambda c, canary: _attack_config(
        "loss", {"module": "os", "class_name": "function", "config": "getcwd", "registered_name": "function"})(c),
     UntrustedConfigError, r"`attack.loss` names 'os.getcwd'"),
    ("objective_unknown_name", lambda c, canary: _set("objective", "os.system")(c), ValueError,
     r"Unknown `objective`: 'os.system'"),
    ("objective_as_object", lambda c, canary: _set("objective", _lambda_config(canary))(c), UntrustedConfigError,
     r"`objective` in a saved config must be a registered objective name .* got 'Lambda'"),
    ("norm_unknown_name", lambda c, canary: _attack_config("norm", "builtins.eval")(c), ValueError,
     r"Unknown `norm`: 'builtins.eval'"),
    ("steps_1e9", lambda c, canary: _attack_config("steps", 10**9)(c), UntrustedConfigError,
     r"`attack.steps`=1000000000 exceeds the limit 100,000"),
    ("restarts_1e6_in_eval_attack", lambda c, canary: c["eval_attack"].update(
        class_name="PGD", module="keras_adv.attacks.pgd", registered_name="keras_adv>PGD",
        config=dict(keras.saving.serialize_keras_object(ka.attacks.PGD(epsilon=0.1))["config"], restarts=10**6)),
     UntrustedConfigError, r"`eval_attack.restarts`=1000000 exceeds the limit 1,000"),
    ("steps_times_restarts", lambda c, canary: c["attack"]["config"].update(steps=50_000, restarts=1_000),
     UntrustedConfigError, r"steps × restarts = 50,000,000 exceeds"),
    ("steps_not_a_number", lambda c, canary: _attack_config("steps", "10; rm -rf /")(c), UntrustedConfigError,
     r"`attack.steps` must be a finite number"),
]


@pytest.mark.parametrize("case_id,edit,error,match", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_file_is_refused_with_a_clear_error(saved, tmp_path, case_id, edit, error, match):
    canary = str(tmp_path / "ran")
    path = _craft(saved, case_id, lambda c: edit(c, canary))
    for safe_mode in (True, False):  # keras_adv's checks hold even when the user turns safe mode off
        if case_id.startswith(("lambda_as", "objective_as")) and not safe_mode:
            continue  # with safe_mode=False the user explicitly trusts lambdas
        with pytest.raises(error, match=match) as info:
            keras.models.load_model(path, safe_mode=safe_mode)
        assert "could not be deserialized properly" not in str(info.value)
    assert not os.path.exists(canary)


def test_absurd_values_refused_when_deserializing_a_lone_attack():
    config = keras.saving.serialize_keras_object(ka.attacks.APGD(epsilon=0.1))
    config["config"]["restarts"] = 10**6
    with pytest.raises(UntrustedConfigError, match=r"`APGD.restarts`=1000000 exceeds"):
        keras.saving.deserialize_keras_object(config, safe_mode=True)


def test_registered_custom_attack_still_loads(tmp_path):
    @keras.saving.register_keras_serializable(package="reliab_test")
    class MyFGSM(ka.attacks.FGSM):
        pass

    model = ka.AdversarialModel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
                                attack=MyFGSM(epsilon=0.1))
    path = str(tmp_path / "custom.keras")
    model.save(path)
    assert type(keras.models.load_model(path, safe_mode=True).attack).__name__ == "MyFGSM"
