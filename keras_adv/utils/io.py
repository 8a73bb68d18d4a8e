"""Crash-safe file output: write to a temporary name, then rename.

An interrupted writer (SIGKILL, out of memory, power loss before the rename)
leaves either the previous file or the complete new one at the target path,
never a truncated one: `os.replace` is atomic on POSIX and Windows when the
temporary file lies in the same folder (the same file system).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Iterator, Sequence, Union

__all__ = ["atomic_path", "atomic_write", "atomic_directory", "staged_files"]

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
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path!r} is a file, not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not replace:
        raise FileExistsError(f"{path!r} exists and is not empty.")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        # mkdtemp makes the folder private (0700); the result gets the permissions of any folder
        # created by this process (0755 under the usual umask 022), so that a server running as
        # another user (TF Serving) can read an export.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
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


_STAGE = "staging-{pid}-"


def _stage_pattern(base: str) -> "re.Pattern[str]":
    return re.compile(re.escape(f".{base}.") + r"staging-(\d+)-.*\.partial$")


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: never clean up
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists
        return True
    return True


def _remove_dead_stages(folder: str, base: str) -> None:
    """Removes staging folders left next to `folder` by runs that were killed (their process is gone)."""
    pattern = _stage_pattern(base)
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            match = pattern.match(name)
            if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


@contextlib.contextmanager
def staged_files(path: PathLike, names: Sequence[str]) -> Iterator[str]:
    """Yields a fresh hidden folder in which to write a *set* of files; on success they go into `path`.

    The set (a run's model, report and plots) is written into a staging folder
    next to `path` (on the same file system), where nothing reads it. When the
    block ends without error, the files are committed into `path`:

    1. entries of `names` that the new set lacks (stale results of a previous
       run: `evaluation/`, `serving/`) are moved out of `path`;
    2. each new entry is moved in with one `os.replace`, in the order of
       `names`, so every file in `path` is at every moment either the complete
       old one or the complete new one (a folder entry, which a rename cannot
       replace, is absent for an instant between its two renames). Put the file
       that marks a complete set (the report) last: when it is the new one, so
       are all the others.

    Writing takes seconds, the commit only a few renames (microseconds); a run
    killed before the commit leaves `path` exactly as it was, one killed
    inside it leaves some new files beside old ones (never a truncated or a
    temporary file in `path`). Other entries of `path` (the user's files) are
    never touched. A staging folder left by a killed run (`.NAME.staging-PID-*.partial`
    next to `path`) is removed by the next call once its process is gone. If
    the block raises, `path` is untouched and the staging folder removed.

    Example:

    ```python
    with staged_files("run", ["model.keras", "report.json"]) as stage:
        model.save(os.path.join(stage, "model.keras"))
        with open(os.path.join(stage, "report.json"), "w") as f:
            json.dump(report, f)
    ```
    """
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    names = [str(n) for n in names]
    if len(set(names)) != len(names) or any(os.sep in n or n in ("", ".", "..") for n in names):
        raise ValueError(f"`names` must be distinct plain file names, got {names!r}.")
    os.makedirs(path, exist_ok=True)
    _remove_dead_stages(parent, base)
    prefix = f".{base}." + _STAGE.format(pid=os.getpid())
    try:
        stage = tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent)
    except OSError:  # the parent is not writable: stage inside `path` (same file system, hidden)
        stage = tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=path)
    try:
        yield stage
        produced = set(os.listdir(stage))
        unknown = sorted(produced - set(names))
        if unknown:
            raise ValueError(f"staged_files: {unknown} were written but are not in `names` {names}.")
        for name in produced:
            _fsync(os.path.join(stage, name))
        trash = tempfile.mkdtemp(prefix=".previous.", dir=stage)
        for name in names:  # 1. stale results go first: what stays is still one (older) run
            target = os.path.join(path, name)
            if name not in produced and os.path.lexists(target):
                os.replace(target, os.path.join(trash, name))
        for name in names:  # 2. the new files, one rename each, in order (the marker last)
            if name not in produced:
                continue
            target = os.path.join(path, name)
            if os.path.isdir(target) and not os.path.islink(target):  # rename cannot replace a non-empty folder
                os.replace(target, os.path.join(trash, name))
            os.replace(os.path.join(stage, name), target)
        _fsync(path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
