"""`keras-adv train --dataset breast_cancer|flows`: constrained attacks in the dataset's FeatureSpace."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow  # trains and judges with the constrained ensemble (~1 min on 2 cores)
def test_train_on_flows_uses_the_feature_space(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "keras_adv", "train", "--dataset", "flows", "--epochs", "1",
                           "--steps", "2", "--eval-steps", "2", "--judge-limit", "8",
                           "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert "ConstrainedAutoAttack" in report["judge"] and "CAPGD" in report["train_attack"]
    assert report["train_attack_config"]["domain"]["class_name"] == "FeatureSpace"
    assert report["train_attack_config"]["epsilon"] == 0.05  # the tables' default budget, not the images' 0.2
    assert 0.0 <= report["robust_accuracy"] <= report["clean_accuracy"]
    # the saved model (its attack holds the flows FeatureSpace and its relation functions) loads in a fresh
    # process: `keras-adv evaluate` on it
    proc = subprocess.run([sys.executable, "-m", "keras_adv", "evaluate", str(out / "model.keras"), "--dataset",
                           "flows", "--attacks", "capgd", "--steps", "2", "--limit", "8", "--epsilons", "0,0.05"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "evaluation" / "robustness.json").exists()


def test_train_on_breast_cancer_end_to_end(tmp_path):
    # The quickest table run of the command (about 25 s): the header printing the training attack's
    # options crashed on the dataset's FeatureSpace (not JSON) before training started.
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "keras_adv", "train", "--dataset", "breast_cancer", "--epochs", "1",
                           "--steps", "2", "--eval-steps", "2", "--judge-limit", "8", "--output", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "training attack CAPGD-2, eps=0.05 (linf), domain=FeatureSpace" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["train_attack_config"]["domain"]["class_name"] == "FeatureSpace"
    assert f"robust accuracy: {report['robust_accuracy']:.4f}" in proc.stdout


def test_a_fresh_process_knows_the_tables_relation_functions():
    code = ("import keras, keras_adv\n"
            "print(keras.saving.get_registered_object('keras_adv>flow_bytes_relation') is not None)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("True")


@pytest.fixture(scope="module")
def breast_cancer_model(tmp_path_factory):
    import keras

    import keras_adv as ka

    x, y = ka.datasets.load("breast_cancer", "train")
    keras.utils.set_random_seed(0)
    model = ka.models.presets.get("tabular_mlp", (30,), 2, width=16, data=x)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("table") / "mlp.keras"
    model.save(path)
    return path


def test_evaluate_on_a_table_uses_its_feature_space_and_equals_the_library(breast_cancer_model, tmp_path):
    import keras

    import keras_adv as ka
    from keras_adv import cli

    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(breast_cancer_model), "--dataset", "breast_cancer", "--attacks", "capgd",
                     "--epsilons", "0,0.1", "--steps", "5", "--limit", "24", "--seed", "3", "--output", str(out),
                     "--quiet"]) == 0
    from_cli = json.loads((out / "robustness.json").read_text())

    x, y = ka.datasets.load("breast_cancer", "test", limit=24)
    domain = ka.datasets.feature_space("breast_cancer")
    direct = ka.evaluate_robustness(keras.models.load_model(breast_cancer_model), x, y, epsilons=[0.0, 0.1], seed=3,
                                    attacks={"capgd": ka.attacks.CAPGD(epsilon=0.1, steps=5, seed=3, domain=domain)})
    direct = direct.to_dict()
    assert from_cli["attacks"]["capgd"]["results"] == direct["attacks"]["capgd"]["results"]
    assert from_cli["clean_accuracy"] == direct["clean_accuracy"] > 0.8
    assert from_cli["run"]["dataset"] == "breast_cancer"


def test_evaluate_on_a_table_refuses_image_attacks_by_name(breast_cancer_model, tmp_path, capsys):
    from keras_adv import cli

    status = cli.main(["evaluate", str(breast_cancer_model), "--dataset", "flows", "--output", str(tmp_path / "e"),
                       "--quiet"])
    assert status == 2 and "shape" in capsys.readouterr().err  # a breast-cancer model is not a flows model
    status = cli.main(["evaluate", str(breast_cancer_model), "--dataset", "breast_cancer", "--attacks", "fgsm,capgd",
                       "--output", str(tmp_path / "e"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "--attacks fgsm" in err and "feature space" in err
    assert not (tmp_path / "e").exists()  # refused before any file is written


@pytest.mark.parametrize("argv,expected", [
    (["--dataset", "breast_cancer", "--attack", "pgd"], "--attack pgd ignores the feature space of breast_cancer"),
    (["--dataset", "breast_cancer", "--model", "small_cnn"],
     "--model small_cnn does not take breast_cancer's records (shape (30,)); use tabular_mlp"),
    (["--dataset", "breast_cancer", "--model", "small_resnet"], "--model small_resnet does not take"),
    (["--dataset", "digits", "--model", "tabular_mlp"],
     "--model tabular_mlp does not take digits's images (shape (8, 8, 1)); use small_cnn or small_resnet"),
    (["--dataset", "breast_cancer", "--epsilon", "1.5"], "--epsilon must be in [0, 1] (a share of each feature's range)"),
])
def test_table_options_are_checked_not_replaced(argv, expected, tmp_path, capsys):
    # An explicit `--attack pgd` / `--model small_cnn` on a table was silently swapped for capgd / tabular_mlp,
    # and a preset that does not fit the data ended in a traceback (exit 1): now one line, exit 2, no file.
    from keras_adv import cli

    assert cli.main(["train", *argv, "--output", str(tmp_path / "run"), "--quiet"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_judges_attack_in_the_training_norm():
    import argparse

    from keras_adv.cli import train
    from keras_adv.datasets.tabular import breast_cancer_space

    args = argparse.Namespace(judges="capgd,constrainedautoattack", eval_steps=5, eval_restarts=1, seed=0)
    judges = train._judges(args, 0.05, breast_cancer_space(), norm="l2")
    assert len(judges) == 2 and {j.norm.name for j in judges.values()} == {"l2"}
    assert {j.norm.name for j in train._judges(args, 0.05, breast_cancer_space()).values()} == {"linf"}
