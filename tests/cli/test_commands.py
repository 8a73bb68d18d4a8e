"""The `keras-adv` command line: train -> evaluate -> export end to end on digits, and error messages."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adv as ka
from keras_adv import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_TRAIN = ["train", "--epochs", "1", "--limit", "128", "--test-limit", "40", "--steps", "2",
              "--eval-steps", "3", "--eval-restarts", "1", "--batch-size", "32", "--quiet",
              # the pre-issue-9 defaults (the defaults are now the slower best recipe, judged by AutoAttack too)
              "--objective", "ce", "--adv-weight", "1", "--width", "32", "--judges", "pgd", "--validation",
              "--ema", "0.9"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC and os.path.getsize(path) > 1000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = cli.main(TINY_TRAIN + ["--output", str(out)])
    assert rc == 0
    return out


def test_train_writes_model_report_and_plots(trained):
    for name in ("model.keras", "report.json", "training.png", "examples.png"):
        assert (trained / name).exists(), name
    assert _is_png(trained / "training.png") and _is_png(trained / "examples.png")
    report = json.loads((trained / "report.json").read_text())
    assert report["dataset"] == "digits" and report["model"] == "small_cnn" and report["objective"] == "ce"
    assert report["train_examples"] == 128 and report["test_examples"] == 40
    assert 0.0 <= report["robust_accuracy"] <= report["clean_accuracy"] <= 1.0
    # the judge is stronger than the training attack
    assert report["judge_config"]["steps"] > report["train_attack_config"]["steps"]
    assert set(report["history"]) >= {"loss", "clean_loss", "adv_loss", "accuracy", "adv_accuracy",
                                      "val_accuracy", "val_adv_accuracy"}
    model = keras.models.load_model(trained / "model.keras")
    assert isinstance(model, ka.AdversarialModel)
    # --ema: Keras' optimizer kept the moving average and fit ended with it
    assert report["ema"] == 0.9 and model.optimizer.get_config()["use_ema"] is True
    assert model.optimizer.get_config()["ema_momentum"] == pytest.approx(0.9)
    # the reported clean accuracy is the saved model's
    x, y = ka.datasets.load("digits", "test", limit=40)
    acc = np.mean(np.argmax(model.base_model.predict(x, verbose=0), -1) == y)
    assert acc == pytest.approx(report["clean_accuracy"])


def _accuracies(report):
    """{attack: [robust accuracy per eps]} from the report's own JSON (`RobustnessReport.to_dict`)."""
    return {name: [r["robust_accuracy"] for r in a["results"]] for name, a in report["attacks"].items()}


def test_evaluate_table_json_png(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = cli.main(["evaluate", str(trained / "model.keras"), "--attacks", "fgsm,pgd", "--epsilons", "0.1,0,0.2",
                   "--steps", "3", "--limit", "40", "--output", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "fgsm" in printed and "pgd" in printed and "worst case" in printed and "ε=0.2" in printed
    report = json.loads((out / "robustness.json").read_text())
    assert _is_png(out / "robustness.png")
    assert report["epsilons"] == [0.0, 0.1, 0.2]
    acc = _accuracies(report)
    worst = [r["robust_accuracy"] for r in report["worst_case"]]
    clean = report["clean_accuracy"]
    assert acc["fgsm"][0] == acc["pgd"][0] == clean
    for i in range(3):
        assert worst[i] <= min(acc["fgsm"][i], acc["pgd"][i]) <= clean
    # FGSM is deterministic: the table equals a direct computation
    base = keras.models.load_model(trained / "model.keras").base_model
    x, y = ka.datasets.load("digits", "test", limit=40)
    clean_ok = np.argmax(base.predict(x, verbose=0), -1) == y
    x_adv = ka.attacks.FGSM(epsilon=0.2)(base, tf.constant(x), tf.constant(y)).numpy()
    expected = np.mean((np.argmax(base.predict(x_adv, verbose=0), -1) == y) & clean_ok)
    assert acc["fgsm"][2] == pytest.approx(expected)
    assert report["attacks"]["pgd"]["config"]["steps"] == 3
    assert report["run"]["dataset"] == "digits" and report["run"]["split"] == "test"
    assert "replacing" not in printed
    # a second evaluation into the same folder says that it replaced the first
    assert cli.main(["evaluate", str(trained / "model.keras"), "--attacks", "fgsm", "--limit", "8",
                     "--output", str(out), "--quiet"]) == 0
    assert "(replacing the previous evaluation there; --output DIR keeps both)" in capsys.readouterr().out
    assert json.loads((out / "robustness.json").read_text())["num_examples"] == 8


def test_export_answers_through_saved_model_load(trained, tmp_path, capsys, monkeypatch):
    out = tmp_path / "keras-adv-run" / "serving" / "1"
    assert cli.main(["export", str(trained / "model.keras"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "serving_default" in printed and "curl" in printed
    # docs/cli.md's "From Python without Keras" block, run as written from the folder holding keras-adv-run/
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        (block,) = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    x, _ = ka.datasets.load("digits", "test", limit=5)
    monkeypatch.chdir(tmp_path)
    namespace = {"x": x}
    exec(block, namespace)
    got = namespace["logits"].numpy()
    base = keras.models.load_model(trained / "model.keras").base_model
    np.testing.assert_allclose(got, base.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    request = json.loads((trained / "request.json").read_text())  # a real digits test image (from report.json)
    np.testing.assert_allclose(np.asarray(request["instances"], "float32"), x[:1])
    # a second export into the same folder needs --overwrite
    assert cli.main(["export", str(trained / "model.keras"), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_export_plain_keras_model(tmp_path):
    from keras_adv.models import presets

    model = presets.get("small_cnn", (8, 8, 1), 10)
    path = tmp_path / "plain.keras"
    model.save(path)
    out = tmp_path / "plain_export"
    assert cli.main(["export", str(path), str(out), "--input-name", "pixels"]) == 0
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(serve(pixels=tf.constant(x))["predictions"].numpy(), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("argv, expected", [
    (["train", "--dataset", "imagenet"], ["unknown dataset 'imagenet'", "digits", "mnist", "cifar10"]),
    (["train", "--model", "vgg"], ["unknown model preset 'vgg'", "small_cnn", "small_resnet"]),
    (["train", "--attack", "deepfool"], ["unknown attack 'deepfool'", "fgsm", "pgd"]),
    (["train", "--objective", "nope"], ["unknown objective 'nope'", "ce", "madry"]),
    (["evaluate", "missing/model.keras"], ["model file not found", os.path.abspath("missing/model.keras")]),
    (["evaluate", "m.keras", "--attacks", "pgd,bogus"], ["unknown attack 'bogus'", "fgsm, pgd"]),
    (["evaluate", "m.keras", "--epsilons", "0,abc"], ["--epsilons", "'abc'"]),
    (["export", "nowhere.keras"], ["model file not found", os.path.abspath("nowhere.keras")]),
])
def test_bad_input_lists_valid_names(argv, expected, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, (text, err)


@pytest.mark.parametrize("argv, expected", [
    # numbers checked before any data loads or any epoch trains (--eval-batch-size 0 used to fail after
    # training, losing the model; the others ended in tracebacks with exit 1)
    (["train", "--eval-batch-size", "0"], "--eval-batch-size must be >= 1, got 0."),
    (["train", "--adv-weight", "-1"], "--adv-weight must be >= 0, got -1."),
    (["train", "--limit", "0"], "--limit must be >= 1, got 0."),
    (["train", "--test-limit", "0"], "--test-limit must be >= 1, got 0."),
    (["evaluate", "MODEL", "--limit", "0"], "--limit must be >= 1, got 0."),
    (["evaluate", "MODEL", "--split", "validation"], "--split 'validation': digits has the splits 'train' and 'test'."),
    (["export", "MODEL", "FILE"], "is a file; give a folder"),
    (["export", "MODEL", "OUT", "--input-name", "bad name!"], "--input-name 'bad name!': a serving input name"),
    (["evaluate", "FILE.keras"], "it is not a .keras file (a zip archive written by model.save)"),  # was "File not found"
])
def test_bad_numbers_and_names_exit_2_with_one_line_before_any_work(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from keras_adv.models import presets

    presets.get("small_cnn", (8, 8, 1), 10).save(tmp_path / "m.keras")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_file.keras").write_text("not a zip")
    subs = {"MODEL": str(tmp_path / "m.keras"), "FILE": str(tmp_path / "a_file"), "OUT": str(tmp_path / "out"),
            "FILE.keras": str(tmp_path / "a_file.keras")}
    argv = [subs.get(a, a) for a in argv]
    if argv[0] == "train":
        argv += ["--output", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_import_option_loads_the_users_registered_components(tmp_path, monkeypatch, capsys):
    # A model whose attack is the user's own class loads in `export` only once its module is imported.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_attacks.py").write_text(
        "import keras, keras_adv\n"
        "@keras.saving.register_keras_serializable(package='my_attacks')\n"
        "class Halved(keras_adv.attacks.FGSM):\n"
        "    pass\n")
    code = ("import keras, keras_adv, my_attacks\n"
            "base = keras_adv.models.presets.small_cnn((8, 8, 1), 10, width=4)\n"
            "m = keras_adv.AdversarialModel(base, attack=my_attacks.Halved(0.1))\n"
            "m.save('custom.keras')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cli.main(["export", "custom.keras", "serving/1", "--import", "no_such_module"]) == 2
    assert "--import no_such_module: No module named 'no_such_module'" in capsys.readouterr().err
    assert cli.main(["export", "custom.keras", "serving/1", "--import", "my_attacks"]) == 0
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()


def test_weak_judges_are_not_called_stronger(tmp_path, capsys):
    # --eval-steps 2 x 1 restart against PGD-7 training: the header says so instead of "stronger"
    assert cli.main(["train", "--epochs", "1", "--limit", "64", "--test-limit", "16", "--width", "4", "--judges",
                     "pgd", "--eval-steps", "2", "--eval-restarts", "1", "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "no stronger than the training one's 7 steps (raise --eval-steps" in out
    assert "with attacks stronger than" not in out


def test_export_refuses_a_mismatched_dataset_before_writing(trained, tmp_path, capsys):
    assert cli.main(["export", str(trained / "model.keras"), str(tmp_path / "s" / "1"), "--dataset",
                     "breast_cancer"]) == 2
    assert "has inputs of shape (30,)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_export_folder_is_readable_like_any_folder_the_process_creates(tmp_path):
    from keras_adv.utils.io import atomic_directory

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "serving" / "1") as tmp:
            open(os.path.join(tmp, "saved_model.pb"), "w").close()
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "serving" / "1").st_mode & 0o777) == oct(0o755)  # was 0o700 (mkdtemp's)


def test_evaluate_rejects_mismatched_dataset(trained, capsys):
    assert cli.main(["evaluate", str(trained / "model.keras"), "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert "(8, 8, 1)" in err and "(32, 32, 3)" in err


def test_attack_registry_follows_exports(monkeypatch):
    registry = cli.attack_registry()
    assert registry["fgsm"] is ka.attacks.FGSM and registry["pgd"] is ka.attacks.PGD
    assert "attack" not in registry and "gradientattack" not in registry

    class NewAttack(ka.attacks.PGD):
        pass

    monkeypatch.setattr(ka.attacks, "NewAttack", NewAttack, raising=False)
    monkeypatch.setattr(ka.attacks, "__all__", list(ka.attacks.__all__) + ["NewAttack"])
    assert cli.attack_registry()["newattack"] is NewAttack
    attack = cli.make_attack("new_attack", 0.1, steps=4, restarts=2, seed=3)
    assert isinstance(attack, NewAttack) and attack.steps == 4 and attack.restarts == 2 and attack.seed == 3
    # FGSM takes no steps/restarts: they are not passed; options are
    fgsm = cli.make_attack("FGSM", 0.25, steps=9, options={"random_start": True, "step_size": 0.3})
    assert fgsm.epsilon == 0.25 and fgsm.random_start and fgsm.step_size == pytest.approx(0.3)


def test_train_on_a_tfds_dataset(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=16):
        rc = cli.main(["train", "--dataset", "fashion_mnist", "--objective", "madry",
                       "--epochs", "1", "--steps", "1", "--eval-steps", "1", "--eval-restarts", "1",
                       "--batch-size", "8", "--no-validation", "--quiet", "--output", str(tmp_path),
                       "--width", "32", "--judges", "pgd"])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dataset"] == "fashion_mnist" and report["model"] == "small_cnn"
    assert report["objective"] == "madry" and report["train_examples"] == 16
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.base_model.input_shape == (None, 28, 28, 1)


def test_bad_attack_option_names_the_problem(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever keras-adv-run/ the current folder holds
    with pytest.raises(cli.CLIError, match="cannot build attack 'pgd'"):
        cli.make_attack("pgd", 0.1, options={"no_such_option": 1})
    assert cli.main(["train", "--attack-option", "steps"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_the_training_attack_label_shows_the_options_given():
    """FGSM-RS ("fast" AT) is FGSM with options: the console header must say so, as the report does."""
    from keras_adv.cli.registry import attack_label

    from keras_adv.cli.inputs import parse_options

    options = parse_options(["random_start=true", "step_size=0.25"])
    attack = cli.make_attack("fgsm", 0.2, options=options)
    assert attack_label(attack, options) == "FGSM, eps=0.2 (linf), random_start=true, step_size=0.25"
    assert attack_label(ka.attacks.PGD(0.2, steps=50, restarts=3)) == "PGD-50 x3 restarts, eps=0.2 (linf)"


def test_list_and_help(capsys):
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in ("digits", "mnist", "cifar10", "small_resnet", "fgsm", "pgd", "madry"):
        assert name in printed
    assert "text_classifier(vocab_size" in printed  # the text preset, built in Python (docs/text.md)
    for command in ("train", "evaluate", "export"):
        with pytest.raises(SystemExit) as exc:
            cli.main([command, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_python_dash_m_entry_point(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["keras_adv", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("keras_adv", run_name="__main__")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "keras-adv train" in out and "evaluate" in out and "export" in out


def test_console_script_is_declared():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "setup.cfg"))
    assert "keras-adv = keras_adv.cli:main" in cfg["options.entry_points"]["console_scripts"]


def test_missing_optional_extra_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import builtins

    # In an empty folder: the README's first command leaves keras-adv-run/ in the repository root, and the
    # default output folder there would be refused before the missing extra is noticed.
    monkeypatch.chdir(tmp_path)

    from keras_adv import cli

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    status = cli.main(["train", "--epochs", "1", "--quiet"])
    assert status == 2
    assert "pip install 'keras-adv[digits]'" in capsys.readouterr().err


def test_defaults_are_the_measured_recipe():
    """`keras-adv train` with no options trains the recipe `benchmarks/recipes.py` measures as `best`."""
    from keras_adv.cli import parser as cli_parser
    from keras_adv.cli import train as cli_train

    args = cli_parser.build_parser().parse_args(["train"])
    assert (args.dataset, args.model, args.width, args.epochs) == ("digits", None, None, None)
    assert (args.objective, args.adv_weight, args.attack, args.steps) == ("trades", 4.0, None, 7)
    assert cli_train.DEFAULTS["image"] == {"model": "small_cnn", "attack": "pgd"}  # resolved per dataset kind
    assert cli_train.RECIPE_WIDTH["small_cnn"] == 64
    assert cli_train.default_epochs("digits") == 80 and cli_train.default_epochs("mnist") == 30
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "recipes.py"
    spec = importlib.util.spec_from_file_location("recipes_bench", path)
    recipes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipes)
    _, best = recipes._recipes(0.2)["best"]
    assert (best["objective"], best["adv_weight"], best["width"], best["epochs"], best["lr"]) == (
        args.objective, args.adv_weight, cli_train.RECIPE_WIDTH["small_cnn"], cli_train.default_epochs("digits"),
        args.learning_rate)
    assert best["attack"]().steps == args.steps
