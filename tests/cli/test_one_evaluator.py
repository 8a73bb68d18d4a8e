"""Issue 9: the CLI is a thin layer: its numbers are `evaluate_robustness`'s, for softmax and sigmoid models."""

import json

import keras
import numpy as np
import pytest

import keras_adv as ka
from keras_adv import cli
from keras_adv.datasets import catalog


def _numbers(report_dict):
    """Every robustness number of a `RobustnessReport.to_dict()` (clean, per attack and ε, worst case)."""
    return {
        "clean": report_dict["clean_accuracy"],
        "epsilons": report_dict["epsilons"],
        "attacks": {name: [(r["epsilon"], r["robust_accuracy"], r["attack_success_rate"], r["robustness_margin"])
                           for r in a["results"]] for name, a in report_dict["attacks"].items()},
        "worst": [(w["epsilon"], w["robust_accuracy"]) for w in report_dict["worst_case"]],
    }


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    (x, y), _ = ka.datasets.load_digits()
    keras.utils.set_random_seed(0)
    model = ka.models.presets.get("small_cnn", (8, 8, 1), 10, width=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("softmax") / "plain.keras"
    model.save(path)
    return path


def test_cli_evaluate_equals_evaluate_robustness(softmax_model, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(softmax_model), "--attacks", "fgsm,pgd", "--epsilons", "0,0.1,0.2",
                     "--steps", "3", "--restarts", "2", "--limit", "40", "--seed", "7", "--output", str(out),
                     "--quiet"]) == 0
    from_cli = json.loads((out / "robustness.json").read_text())

    model = keras.models.load_model(softmax_model)
    x, y = ka.datasets.load("digits", "test", limit=40)
    direct = ka.evaluate_robustness(
        model, x, y, epsilons=[0.0, 0.1, 0.2], seed=7,
        attacks={"fgsm": ka.attacks.FGSM(epsilon=0.2, seed=7),
                 "pgd": ka.attacks.PGD(epsilon=0.2, steps=3, restarts=2, seed=7)}).to_dict()
    assert _numbers(from_cli) == _numbers(direct)  # identical, not approximately equal
    assert 0.0 < from_cli["clean_accuracy"] <= 1.0 and from_cli["attacks"]["pgd"]["results"][2]["robust_accuracy"] < 1.0


BINARY = catalog.DatasetInfo("digits01", (8, 8, 1), 2, "scikit-learn", None, "digits 0 and 1 (a test set-up)")


def _digits01(name="digits01", split="train", **kwargs):
    (x, y), (xt, yt) = ka.datasets.load_digits()
    x, y = (x, y) if split == "train" else (xt, yt)
    keep = y < 2
    limit = kwargs.get("limit")
    return x[keep][:limit], y[keep][:limit]


def test_sigmoid_binary_model_through_the_cli(tmp_path, monkeypatch, capsys):
    """A single-unit sigmoid classifier: the CLI's evaluate and export threshold it, never arg-max it."""
    x, y = _digits01(split="train")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(16, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y.astype("float32"), epochs=20, batch_size=32, verbose=0)
    path = tmp_path / "binary.keras"
    model.save(path)

    monkeypatch.setitem(catalog._CATALOG, "digits01", BINARY)
    monkeypatch.setattr(ka.datasets, "load", _digits01)
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(path), "--dataset", "digits01", "--attacks", "fgsm", "--epsilons", "0,0.3",
                     "--output", str(out), "--quiet"]) == 0
    from_cli = json.loads((out / "robustness.json").read_text())
    xt, yt = _digits01(split="test")
    direct = ka.evaluate_robustness(keras.models.load_model(path), xt, yt, epsilons=[0.0, 0.3], seed=0,
                                    attacks={"fgsm": ka.attacks.FGSM(epsilon=0.3, seed=0)}).to_dict()
    assert _numbers(from_cli) == _numbers(direct)
    # arg-max of one unit is always class 0 (accuracy ~0.5 here); thresholding gets the digits right
    assert from_cli["clean_accuracy"] > 0.95
    assert from_cli["num_examples"] == len(yt) and set(np.unique(yt)) == {0, 1}

    capsys.readouterr()
    assert cli.main(["export", str(path), str(tmp_path / "serving" / "1"), "--dataset", "digits01"]) == 0
    first_label = int(yt[0])
    assert f"predicted class {first_label} " in capsys.readouterr().out  # the first test image, thresholded
