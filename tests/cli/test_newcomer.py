"""Issue 14: what a newcomer meets: quiet start-up, safe defaults, checked input, clean dataset failures."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_adv as ka
from keras_adv import cli
from keras_adv.cli import _startup, progress
from keras_adv.cli import train as train_command
from keras_adv.datasets import catalog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What pip's generated `keras-adv` console script runs, plus a report of whether TensorFlow got imported.
CONSOLE_SCRIPT = textwrap.dedent("""\
    import sys
    sys.argv[0] = "keras-adv"
    from keras_adv.cli import main
    try:
        status = main(sys.argv[1:])
    except SystemExit as e:
        status = e.code
    print("tensorflow imported:", "tensorflow" in sys.modules)
    sys.exit(status)
""")


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it: the CLI must quiet TensorFlow itself
    done = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    return done.returncode, done.stdout, done.stderr


# Lines TensorFlow prints at start-up (absl/glog records, the oneDNN and CPU-feature notes, CUDA probing).
_BANNER_MARKERS = ("oneDNN", "cpu_feature_guard", "cuInit", "cuda", "absl::InitializeLog", "TensorFlow binary",
                   "rebuild TensorFlow")


def _noise(text):
    return [line for line in text.splitlines()
            if any(m in line for m in _BANNER_MARKERS) or line[:1] in "EF" and line[1:5].isdigit()
            or line.startswith(("ERROR", "E0000", "F0000", "Traceback"))]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list"], ["train", "--help"], ["evaluate", "--help"]])
def test_no_banner_and_no_tensorflow_for_help(args):
    status, out, err = _run_cli(*args)
    assert status == 0, err
    assert _noise(out + err) == [], out + err
    assert "tensorflow imported: False" in out
    if args == ["train", "--help"]:
        assert "cost:" in out and "minutes" in out
        assert "trades" in out and "mart" in out  # --objective choices, from the registries' copy
    if args == ["list"]:
        assert "breast_cancer" in out and "capgd" in out and "small_cnn" in out


def test_startup_noise_filter_keeps_real_errors():
    assert _startup.is_startup_noise("I0000 00:00:1795320076.399039 7132 port.cc:153] oneDNN custom operations")
    assert _startup.is_startup_noise("E0000 00:00:17.5 1 cuda_executor.cc:1228] failed call to cuInit: "
                                     "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
    assert not _startup.is_startup_noise("E0000 00:00:17.5 1 op_kernel.cc:1] OOM when allocating tensor")
    assert not _startup.is_startup_noise("Traceback (most recent call last):")


def test_line_per_epoch_when_output_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert progress.fit_verbosity(True) == 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert progress.fit_verbosity(True) == 1
    assert progress.fit_verbosity(False) == 0
    assert progress.attack_verbosity(True) == 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert progress.attack_verbosity(True) == 0


SMALL = ["--epochs", "1", "--limit", "64", "--test-limit", "16", "--steps", "1", "--eval-steps", "2",
         "--eval-restarts", "1", "--batch-size", "32", "--width", "8", "--judges", "pgd"]


def test_train_refuses_a_used_output_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *SMALL, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "\r" not in printed and "\x1b" not in printed  # captured output is not a terminal: plain lines
    assert any(line.startswith("2/2 - ") and "loss:" in line for line in printed.splitlines())  # one line per epoch
    (out / "evaluation").mkdir()
    (out / "evaluation" / "robustness.json").write_text("{}")  # a stale result of the previous model
    (out / "notes.txt").write_text("mine")
    before = (out / "model.keras").stat().st_mtime_ns

    assert cli.main(["train", *SMALL, "--output", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.keras").stat().st_mtime_ns == before  # nothing touched

    # --overwrite: the previous run's files go (no stale result beside a new model), nothing else does
    train_command.prepare_output(str(out), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, expected", [
    (["train", "--epsilon", "2"], ["--epsilon must be in [0, 1]", "got 2"]),
    (["train", "--epsilon", "-0.1"], ["--epsilon must be in [0, 1]"]),
    (["train", "--epsilon", "nan"], ["--epsilon must be in [0, 1]"]),
    (["evaluate", "m.keras", "--epsilons", "0,0.1,1.5"], ["--epsilons must be in [0, 1]", "got 1.5"]),
    (["train", "--epochs", "0"], ["--epochs must be >= 1"]),
    (["train", "--ema", "1"], ["--ema must be in [0, 1)", "got 1"]),
    (["train", "--ema", "-0.5"], ["--ema must be in [0, 1)"]),
])
def test_nonsense_numbers_are_refused(argv, expected, capsys, tmp_path):
    assert cli.main(argv + (["--output", str(tmp_path / "x")] if argv[0] == "train" else [])) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert not (tmp_path / "x").exists()


def test_objective_choices_come_from_the_registry(monkeypatch, capsys, tmp_path):
    objectives = ka.models.objectives
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    # help reads the registries' tested copy (cli/names.json, see tests/cli/test_names.py): no TensorFlow
    assert "training objective: " + " | ".join(objectives.available()) in printed

    class Hinge(objectives.CrossEntropyMixture):
        name = "my_hinge"

    monkeypatch.setitem(objectives._REGISTRY, "my_hinge", Hinge)
    assert cli.main(["train", "--objective", "nope", "--output", str(tmp_path)]) == 2
    assert "my_hinge" in capsys.readouterr().err  # the commands check names against the live registry


def _scaled_16(name="digits", split="train", **kwargs):
    (x, y), (xt, yt) = ka.datasets.load_digits()
    x, y = (x, y) if split == "train" else (xt, yt)
    return x * 16.0, y  # 0..16 pixel values, as sklearn ships them


def test_data_outside_the_bounds_is_refused_before_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ka.datasets, "load", _scaled_16)
    assert cli.main(["train", "--output", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "values in [0, 16]" in err and "outside the attack bounds [0.0, 1.0]" in err
    assert "Graph execution" not in err and not (tmp_path / "run").exists()

    from keras_adv.models import presets

    path = tmp_path / "m.keras"
    presets.get("small_cnn", (8, 8, 1), 10, width=4).save(path)
    assert cli.main(["evaluate", str(path), "--output", str(tmp_path / "ev")]) == 2
    assert "outside the attack bounds" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
    with pytest.raises(ValueError, match="outside the attack bounds"):  # a plain ValueError
        cli.inputs.check_data(np.full((2, 8, 8, 1), 2.0), "x")


def _no_network(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens on the discard port
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_download_needed_without_network_fails_fast_in_one_line(monkeypatch, tmp_path):
    _no_network(monkeypatch)
    data_dir = tmp_path / "tfds"
    with pytest.raises(catalog.DatasetUnavailableError) as info:
        ka.datasets.load("fashion_mnist", "test", data_dir=str(data_dir))
    message = str(info.value)
    assert "\n" not in message
    for text in ("'fashion_mnist'", "download", str(data_dir), "TFDS_DATA_DIR", "'digits'"):
        assert text in message, message
    assert not data_dir.exists() or not any(data_dir.rglob("*"))  # nothing partial left behind
    with pytest.raises(catalog.DatasetUnavailableError, match="download=False"):
        ka.datasets.load("mnist", data_dir=str(data_dir), download=False)


def test_download_failure_through_the_cli(monkeypatch, tmp_path, capsys):
    _no_network(monkeypatch)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert cli.main(["train", "--dataset", "mnist", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keras-adv train: error: dataset 'mnist' needs a one-time download")
    assert str(tmp_path / "tfds") in err[0]


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "run", interrupted)  # the command dispatches to it at call time
    assert cli.main(["train", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "keras-adv train: interrupted"


def test_reader_leaving_the_pipe_is_quiet():
    # `keras-adv list | head -1` once `head` has gone: no BrokenPipeError traceback or "Exception ignored"
    # note, and the status of a process ended by SIGPIPE. The reader is gone before the command prints.
    script = textwrap.dedent("""\
        import os, sys
        sys.argv[0] = "keras-adv"
        r, w = os.pipe()
        os.close(r)
        os.dup2(w, 1)
        from keras_adv.cli import main
        sys.exit(main(["list"]))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.stderr == "" and done.returncode == 141, (done.returncode, done.stderr)
