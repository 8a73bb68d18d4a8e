"""Crash-safe file output: write to a temporary name, then rename.

An interrupted writer (SIGKILL, out of memory, power loss before the rename)
leaves either the previous file or the complete new one at the target path,
never a truncated one: `os.replace` is atomic on POSIX and Windows when the
temporary file lies in the same folder (the same file system).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Union

__all__ = ["atomic_path", "atomic_write", "atomic_directory"]

PathLike = Union[str, "os.PathLike[str]"]


def _temp_name(path: str) -> str:
    """A unique hidden name in the target's folder that keeps the extension (`.keras` checks it)."""
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    if stem.endswith(".weights"):  # Keras wants `*.weights.h5`
        stem, ext = stem[: -len(".weights")], ".weights" + ext
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=folder)
    os.close(fd)
    os.remove(tmp)  # writers such as model.save want to create the file themselves
    return tmp


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on success it replaces `path` atomically.

    The temporary file lies in the same folder as `path` and keeps its
    extension, so writers that check it (`model.save(...)` needs `.keras`,
    `savefig` infers the format) work unchanged. If the block raises, the
    temporary file is removed and `path` is untouched.

    Example:

    ```python
    with atomic_path("run/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"Nothing was written to the temporary file for {path!r}.")
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8"):
    """Opens a temporary file for writing; it replaces `path` atomically when the block ends.

    Example:

    ```python
    with atomic_write("run/report.json") as f:
        json.dump(report, f)
    ```
    """
    if not any(c in mode for c in "wx") or "+" in mode:
        raise ValueError(f"`mode` must be a write mode such as 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode.replace("x", "w"), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_directory(path: PathLike, replace: bool = False) -> Iterator[str]:
    """Yields a temporary folder to fill; on success it becomes `path`.

    Used for SavedModel exports: an interrupted export leaves no half-written
    `serving/1` that TF Serving could pick up. A non-empty `path` is refused
    unless `replace`, in which case the old folder is moved aside and removed
    only after the new one is in place.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(path) and os.listdir(path) and not replace:
        raise FileExistsError(f"{path!r} exists and is not empty.")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.replace(path, os.path.join(old, "previous"))
        os.replace(tmp, path)
        _fsync(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
