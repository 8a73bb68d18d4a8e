"""Start-up of the `keras-adv` process: no TensorFlow for `--help`/`--version`, and a quiet import otherwise.

`keras_adv/__init__.py` defers loading the library in the command's own
process (`_in_cli_process`), so parsing the command line and printing help
take a fraction of a second. Commands that need the library call
`library()`, which imports TensorFlow with the C++ start-up banner (oneDNN,
CPU-feature and CUDA-driver lines, "failed call to cuInit" on machines
without a GPU) filtered out of stderr; every other line is passed through.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["in_cli_process", "library", "is_startup_noise"]

# Lines TensorFlow's C++ runtime prints at import / first device lookup on a CPU machine.
_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"^[IW]\d{4} "),  # absl/glog INFO and WARNING records (oneDNN, cpu_feature_guard, cudart_stub ...)
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"),
    re.compile(r"^E\d{4} .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|TensorRT)"),  # GPU probing on a machine without one
)


def is_startup_noise(line: str) -> bool:
    """Whether `line` is part of TensorFlow's start-up banner (not a real error)."""
    return any(p.search(line) for p in _NOISE)


def in_cli_process() -> bool:
    """True in the process of the `keras-adv` console script or of `python -m keras_adv`."""
    argv = getattr(sys, "argv", None) or [""]
    if os.path.basename(argv[0]).split(".")[0] == "keras-adv":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return "-m" in orig[:-1] and orig[orig.index("-m") + 1] == "keras_adv"


def _quiet_tensorflow_import():
    """Imports TensorFlow (and probes devices) with the start-up banner filtered out of stderr."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a file (e.g. captured): nothing to filter
        fd = None
    if fd is None:
        import tensorflow as tf

        tf.config.list_physical_devices()
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit") happens here
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if line.strip() and not is_startup_noise(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
    tf.get_logger().setLevel("ERROR")


def library():
    """The fully loaded `keras_adv` package, TensorFlow imported quietly."""
    _quiet_tensorflow_import()
    import keras_adv

    if "AdversarialModel" not in vars(keras_adv):  # loaded lazily in the `keras-adv` process
        keras_adv._load()
    return keras_adv
