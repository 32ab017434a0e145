"""Writing files so that a crash never leaves half of one, and the lock that keeps one run per
workdir. A file is written beside its destination under a hidden name, flushed, given the mode
``open()`` would give it (0644 under the usual umask), then renamed over the destination, unless
that holds the same bytes already: then it is left as it is, its time too.
"""

from __future__ import annotations

import errno
import fcntl
import filecmp
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flax_resnets.errors import InputError, shown
from flax_resnets.interrupts import writing


def default_file_mode(folder: bool = False) -> int:
    """0666 (0777 for a ``folder``) less this process's umask: the mode ``open(path, "w")`` creates
    files with (``mkdir``, folders)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def atomic_write(path: Path, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file, then move it to ``path`` in one step."""
    with writing():  # Ctrl-C meanwhile waits until the file is whole
        _atomic_write(Path(path), write, binary=binary)


def _atomic_write(path: Path, write: Callable[[IO], None], *, binary: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", dir=path.parent, prefix=f".{path.name}.", delete=False
    )
    try:
        with tmp:  # closing flushes what is left: a full disk may refuse that too
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.chmod(tmp.name, default_file_mode())
    except OSError as error:  # a full disk, a file-size limit: named by the file it was for
        os.unlink(tmp.name)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    except BaseException:
        os.unlink(tmp.name)
        raise
    try:
        if path.is_file() and filecmp.cmp(tmp.name, path, shallow=False):  # the same bytes: left as
            os.unlink(tmp.name)  # it is, its time too (an evaluation that finds what a run wrote)
        else:
            os.replace(tmp.name, path)
    except BaseException:  # e.g. ``path`` is a folder: leave nothing behind
        os.unlink(tmp.name)
        raise


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Write a new folder of ``files`` (name -> content) whole or not at all, never over an existing one
    (``FileExistsError``): into a hidden temporary folder beside it, then one rename."""
    folder = Path(folder)
    with writing():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            for name, content in files.items():
                with open(staging / name, "wb") as file:
                    file.write(content)
                    file.flush()
                    os.fsync(file.fileno())
                os.chmod(staging / name, default_file_mode())
            os.chmod(staging, default_file_mode(folder=True))
            if folder.exists() or folder.is_symlink():
                raise FileExistsError(errno.EEXIST, "it exists already", str(folder))
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON file that must hold an object (a record), or one line naming it and ``fix``."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path} cannot be read ({error}): {fix}.") from error
    if not isinstance(value, dict):
        raise InputError(f"{path} holds a JSON {type(value).__name__}, not an object: {fix}.")
    return value


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


RUN_FILES_BYTES = 200  # what a run's deepest file adds to its workdir's path (checkpoints' ~80)
TEMPORARY_NAME_BYTES = 10  # what ``atomic_write``'s hidden name adds to a file's name


def require_writable(path: Path, fix: str = "", *, folder: bool = True) -> None:
    """The one check of a place to write (every output flag, every workdir), before any work: a path
    too long for the file system, a link to nothing, a folder where a file is wanted, a file where a
    folder is or above it, or a nearest existing folder that refuses a probe file (read-only, full)
    is one ``InputError`` ending in ``fix``."""
    path, fix = Path(path), f": {fix}." if fix else ""
    absolute = path.absolute()  # a name or path over the system's limits fails only at the first write
    names, whole = os.pathconf(absolute.anchor, "PC_NAME_MAX"), os.pathconf(absolute.anchor, "PC_PATH_MAX")
    longest = max(len(os.fsencode(part)) for part in absolute.parts) + TEMPORARY_NAME_BYTES
    if longest > names or len(os.fsencode(absolute)) + RUN_FILES_BYTES * folder > whole:
        raise InputError(
            f"{shown(path)[:80]}... is too long for this file system ({names} bytes a name, {whole} a path, "
            f"{RUN_FILES_BYTES} of them for the files written inside a folder); choose a shorter path{fix}"
        )
    if path.is_symlink() and not path.exists():
        raise InputError(f"{shown(path)} is a link to {shown(os.readlink(path))}, which does not exist{fix}")
    if path.is_dir() and not folder:
        raise InputError(f"{shown(path)} is a folder, not a file to write{fix}")
    candidates = (path, *absolute.parents) if folder else absolute.parents
    existing = next(p for p in candidates if p.exists())
    if not existing.is_dir():
        raise InputError(f"{shown(existing)} is a file, not a folder to write into{fix}")
    probe = existing / f".write_probe.{os.getpid()}"
    try:
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as error:
        raise InputError(f"cannot write in {shown(existing)} ({error.strerror or error}){fix}") from error


class WorkdirLock:
    """An OS lock on ``workdir/.lock`` for a run's life, released by the kernel however it ends (never
    stale); a second run on the workdir is refused in one line naming the holder's pid."""

    NAME = ".lock"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.file: IO | None = None

    def __enter__(self) -> WorkdirLock:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            file = open(self.workdir / self.NAME, "a+")
        except OSError as error:  # a folder or an unwritable file in its place
            raise InputError(
                f"{self.workdir / self.NAME} cannot be opened as the run's lock file "
                f"({error.strerror or error}): remove it, or use another --workdir."
            ) from error
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise InputError(
                f"{self.workdir} is in use by another run (pid {holder}): wait for it to end, "
                "or use another --workdir."
            ) from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    @classmethod
    def holder(cls, workdir: Path) -> str | None:
        """The pid of another process that holds ``workdir``'s lock now (a run training there), or
        None. Looking takes a shared lock for an instant."""
        try:
            file = open(Path(workdir) / cls.NAME)
        except OSError:
            return None
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = file.read().strip() or "unknown"
                return None if pid == str(os.getpid()) else pid
            fcntl.flock(file, fcntl.LOCK_UN)
        return None

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None:
            self.file.close()  # closing the file releases the lock
