"""Killing the `keras-adv train` CLI (SIGKILL, a real subprocess) never leaves a truncated or temporary result.

The output folder already holds a complete previous run (1 epoch), a stale result of a later command
(`evaluation/robustness.json`) and a file of the user's (`notes.txt`). A new run (3 epochs, `--overwrite`)
is killed at several moments: as soon as its staging folder appears, while `model.keras` is being
written, as soon as the commit into the output folder begins, and at two random delays. After each kill
every file in the output folder is the complete old one (same bytes) or the complete new one
(`model.keras` loads with `keras.models.load_model`, `report.json` parses and reports 3 epochs, the PNGs
end with their IEND chunk); the folder holds no temporary file (leftovers are hidden `.partial` folders
*next to* it); a new report means every other file is new too (the report is committed last); the
user's file is untouched. A last, uninterrupted run completes and removes the killed runs' staging folders.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_adv.cli.train import RUN_FILES

pytestmark = pytest.mark.slow  # 8 CLI processes (~1 min on 2 cores)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["--limit", "200", "--test-limit", "40", "--judges", "pgd", "--eval-steps", "2", "--eval-restarts", "1",
        "--judge-limit", "20", "--width", "8", "--steps", "1", "--batch-size", "50", "--quiet"]
OLD_EPOCHS, NEW_EPOCHS = 1, 3
PNG_END = b"IEND\xaeB`\x82"


def _command(out, epochs):
    return [sys.executable, "-m", "keras_adv", "train", *ARGS, "--epochs", str(epochs), "--output", str(out),
            "--overwrite"]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")


def _run(out, epochs):
    proc = subprocess.run(_command(out, epochs), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _is_complete_new(path):
    name = os.path.basename(path)
    if name == "model.keras":
        import keras

        import keras_adv  # noqa: F401 - registers the classes the file names

        model = keras.models.load_model(path)
        return model.count_params() > 0
    if name == "report.json":
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        return report["epochs"] == NEW_EPOCHS and len(report["history"]["loss"]) == NEW_EPOCHS
    if name.endswith(".png"):
        with open(path, "rb") as f:
            data = f.read()
        return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(PNG_END)
    raise AssertionError(f"unexpected file {path}")


def _check(out, old):
    """Asserts the invariants; returns {run file: 'old' | 'new' | 'removed'} (the user's file: always old)."""
    now = _files(out)
    state = {}
    for rel, digest in old.items():
        path = os.path.join(out, rel)
        if rel not in now:
            # only the stale result of a later command may go (first of all, before any new file)
            assert rel.startswith("evaluation" + os.sep), f"{rel} is missing: neither the old nor the new one"
            state[rel] = "removed"
        elif now[rel] == digest:
            state[rel] = "old"
        elif rel == "notes.txt":
            raise AssertionError("the user's file was changed")
        else:
            assert _is_complete_new(path), f"{rel} is neither the complete old file nor a complete new one"
            state[rel] = "new"
    names = set(os.listdir(out))  # no temporary file in the output folder, where it could pass for a result
    assert names <= set(RUN_FILES) | {"notes.txt"}, f"not a result: {names - set(RUN_FILES) - {'notes.txt'}}"
    assert set(now) <= set(old), set(now) - set(old)
    siblings = [n for n in os.listdir(os.path.dirname(out)) if n != os.path.basename(out)]
    assert all(n.startswith(f".{os.path.basename(out)}.staging-") and n.endswith(".partial") for n in siblings), siblings
    if any(s == "new" for s in state.values()):
        assert state["evaluation/robustness.json"] == "removed", "a new model beside the old model's evaluation"
    assert state.pop("notes.txt") == "old"
    if state["report.json"] == "new":
        assert set(state.values()) <= {"new", "removed"}, state
    return state


def _staging(out):
    parent, base = os.path.split(out)
    return [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(f".{base}.") and n.endswith(".partial")]


def _temp_in(out, old_names):
    return [n for n in os.listdir(out) if n not in old_names]


TRIGGERS = {
    # a staging folder (or, for a writer without one, any temporary file in the output folder) appears
    "staging appears": lambda out, old_names, ino: bool(_staging(out) or _temp_in(out, old_names)),
    # model.keras is being written (in the staging folder, or as a temporary file in the output folder)
    "model being written": lambda out, old_names, ino: any(
        os.path.exists(os.path.join(s, "model.keras")) for s in _staging(out)) or any(
        ".model." in n for n in _temp_in(out, old_names)),
    # the commit begins: the output folder's model.keras is no longer the old file
    "commit begins": lambda out, old_names, ino: _inode(os.path.join(out, "model.keras")) != ino,
}


def _inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _kill_when(out, trigger=None, delay=None):
    old_names = set(os.listdir(out))
    ino = _inode(os.path.join(out, "model.keras"))
    proc = subprocess.Popen(_command(out, NEW_EPOCHS), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while proc.poll() is None:
            if (trigger is not None and trigger(out, old_names, ino)) or (
                    delay is not None and time.monotonic() - start >= delay):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "killed" if proc.returncode == -signal.SIGKILL else f"finished (rc {proc.returncode})"


def test_killed_train_leaves_old_or_new_files_never_truncated(tmp_path):
    pristine = tmp_path / "pristine" / "run"
    _run(pristine, OLD_EPOCHS)
    (pristine / "evaluation").mkdir()
    (pristine / "evaluation" / "robustness.json").write_text('{"model": "the old one"}')
    (pristine / "notes.txt").write_text("mine")
    old = _files(pristine)
    assert {"model.keras", "report.json", "notes.txt"} <= set(old)

    # an uninterrupted run: its duration sets the random kill delays
    start = time.monotonic()
    full = tmp_path / "full" / "run"
    shutil.copytree(pristine, full)
    _run(full, NEW_EPOCHS)
    duration = time.monotonic() - start
    assert set(_check(str(full), old).values()) == {"new", "removed"} and _staging(str(full)) == []

    rng = np.random.default_rng(0)
    plans = [(name, trigger, None) for name, trigger in TRIGGERS.items()]
    plans += [(f"after {d:.1f} s", None, d) for d in rng.uniform(0.4, 1.0, 2) * duration]
    outcome = {}
    for i, (label, trigger, delay) in enumerate(plans):
        out = tmp_path / f"kill{i}" / "run"
        shutil.copytree(pristine, out)
        how = _kill_when(str(out), trigger, delay)
        state = _check(str(out), old)
        outcome[label] = (how, sorted(set(state.values())))
    print("kill outcomes:", outcome)
    assert sum(how == "killed" for how, _ in outcome.values()) >= 3, outcome

    # the next run into a killed run's folder completes and removes the dead staging folders
    last = tmp_path / f"kill{len(plans) - 1}" / "run"
    _run(last, NEW_EPOCHS)
    assert set(_check(str(last), old).values()) == {"new", "removed"}
    assert _staging(str(last)) == []
