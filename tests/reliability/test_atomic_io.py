"""Atomic outputs: a writer killed mid-write leaves the old file (or the new one), never a truncated one."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from keras_adv.utils import io as io_lib

IO_FILE = io_lib.__file__

CHILD = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("kaio", {io_file!r})
    io = importlib.util.module_from_spec(spec); spec.loader.exec_module(io)
    with io.atomic_write({target!r}, "wb") as f:
        f.write(b"N" * 3_000_000)
        f.flush()
        print("HALF", flush=True)
        time.sleep(120)
        f.write(b"END")
""")


def test_sigkill_mid_write_leaves_the_old_file_intact(tmp_path):
    target = str(tmp_path / "report.json")
    with open(target, "wb") as f:
        f.write(b"OLD" * 1000)
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(io_file=IO_FILE, target=target)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "HALF"
    proc.send_signal(signal.SIGKILL)  # killed in the middle of writing
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open(target, "rb") as f:
        assert f.read() == b"OLD" * 1000
    leftovers = [n for n in os.listdir(tmp_path) if n != "report.json"]
    assert all(n.startswith(".report.") and ".partial" in n for n in leftovers)  # hidden, never the target


def test_completed_write_replaces_and_failed_write_keeps(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with io_lib.atomic_path(target) as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with io_lib.atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["model.keras"]  # the temporary file was removed


def test_weights_files_keep_their_double_extension(tmp_path):
    with io_lib.atomic_path(tmp_path / "m.weights.h5") as tmp:
        assert tmp.endswith(".weights.h5")
        open(tmp, "w").close()
    assert (tmp_path / "m.weights.h5").exists()


def test_atomic_directory(tmp_path):
    dest = tmp_path / "serving" / "1"
    with io_lib.atomic_directory(dest) as tmp:
        open(os.path.join(tmp, "saved_model.pb"), "w").close()
        assert not dest.exists()
    assert (dest / "saved_model.pb").exists()
    with pytest.raises(FileExistsError):
        with io_lib.atomic_directory(dest):
            pass
    with pytest.raises(RuntimeError):
        with io_lib.atomic_directory(tmp_path / "serving" / "2"):
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path / "serving")) == ["1"]


def test_staged_files_commit_in_order_replace_stale_results_and_keep_other_files(tmp_path, monkeypatch):
    out = tmp_path / "run"
    (out / "evaluation").mkdir(parents=True)
    (out / "evaluation" / "robustness.json").write_text("of the old model")
    for name in ("model.keras", "report.json", "notes.txt"):
        (out / name).write_text(f"old {name}")
    names = ["evaluation", "model.keras", "plot.png", "report.json"]
    moves = []
    real_replace = os.replace

    def replace(src, dst):
        moves.append((os.path.basename(os.path.dirname(src)) == "run", os.path.basename(dst)))
        real_replace(src, dst)

    with io_lib.staged_files(out, names) as stage:
        assert os.path.dirname(stage) == str(tmp_path) and os.path.basename(stage).startswith(".run.staging-")
        for name in ("report.json", "model.keras", "plot.png"):  # written in any order
            (tmp_path / stage / name).write_text(f"new {name}")
        assert (out / "model.keras").read_text() == "old model.keras"  # nothing visible before the commit
        monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "replace", real_replace)
    # the stale folder leaves first, then the new files in the order of `names`, the report last
    assert [m for m in moves if not m[0]] == [(False, "model.keras"), (False, "plot.png"), (False, "report.json")]
    assert moves[0] == (True, "evaluation")
    assert sorted(os.listdir(out)) == ["model.keras", "notes.txt", "plot.png", "report.json"]
    assert (out / "report.json").read_text() == "new report.json" and (out / "notes.txt").read_text() == "old notes.txt"
    assert os.listdir(tmp_path) == ["run"]  # the staging folder is gone


def test_staged_files_failures_leave_the_folder_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_text("old")
    with pytest.raises(RuntimeError):
        with io_lib.staged_files(out, ["model.keras"]) as stage:
            (tmp_path / stage / "model.keras").write_text("half")
            raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match=r"\['stray.txt'\] were written but are not in `names`"):
        with io_lib.staged_files(out, ["model.keras"]) as stage:
            (tmp_path / stage / "model.keras").write_text("new")
            (tmp_path / stage / "stray.txt").write_text("?")
    assert (out / "model.keras").read_text() == "old" and os.listdir(tmp_path) == ["run"]
    with pytest.raises(ValueError, match="distinct plain file names"):
        with io_lib.staged_files(out, ["a", "a"]):
            pass


def test_staged_files_remove_the_staging_folders_of_dead_runs_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now
    (tmp_path / f".run.staging-{dead.pid}-x1.partial").mkdir()
    (tmp_path / ".run.staging-1-x2.partial").mkdir()  # pid 1 is alive: a run in progress keeps its folder
    (tmp_path / ".other.staging-99999999-x3.partial").mkdir()  # another output folder's: not ours to touch
    with io_lib.staged_files(tmp_path / "run", ["a.txt"]) as stage:
        (tmp_path / stage / "a.txt").write_text("new")
    assert sorted(os.listdir(tmp_path)) == [".other.staging-99999999-x3.partial", ".run.staging-1-x2.partial", "run"]
