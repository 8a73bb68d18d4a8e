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
