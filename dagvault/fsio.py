"""Durable file publication: temp → fsync → rename → fsync(dir).

A file dagvault publishes is either absent or complete. Temp files are hidden
(``.name.<pid>.tmp``) and carry the writer's pid, so a later run can tell a temp
file of a crashed writer (remove it) from one that is still being written (leave it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from dagvault import permissions, safedir
from dagvault.errors import StorageError, storage_error
from dagvault.procs import pid_alive

_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp(-journal|-wal|-shm)?$")


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path) -> Path:
    """``directory``, created 0700 (with any missing parents) if it does not exist."""
    try:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another run made it meanwhile
                new.mkdir(mode=permissions.PRIVATE_DIR_MODE)
    except OSError as exc:
        raise storage_error(exc, "creating directory", str(directory)) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StorageError(
            f"Permission denied: directory {directory} is not writable",
            "Fix its permissions or choose another directory (--backup-dir / BACKUP_DIR).",
        )
    return directory


def publish(temp: Path, final: Path, *, overwrite: bool = False, mode: int | None = None) -> None:
    """Move a fully written and fsynced ``temp`` to ``final`` and make the rename durable.

    Without ``overwrite`` an existing ``final`` is never replaced: link(2) fails
    atomically where a check-then-rename would race with another writer. The file takes
    the current operation's mode (``permissions.files_like``) before anyone can see it.
    """
    try:
        permissions.apply(temp, mode)
        if overwrite:
            os.replace(temp, final)
        else:
            os.link(temp, final)
            os.unlink(temp)
        fsync_dir(final.parent)
    except FileExistsError:
        raise
    except OSError as exc:
        raise storage_error(exc, "publishing", str(final)) from exc


def write_atomic(
    final: Path, data: bytes, *, overwrite: bool = True, times_of: Path | None = None
) -> None:
    """Write ``data`` to ``final`` so that readers see the old file or the whole new one.

    A replaced file keeps its mode; a new one takes the operation's (0600 outside one).
    ``times_of``: give the file that file's access and modification times before it
    appears (a sidecar ages with its data file, see ``age_with``)."""
    with safedir.entry(final) as target:  # (inside the API's directories: held)
        temp = temp_path(target)
        mode = permissions.mode_of(target, 0) or permissions.published_mode()
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(temp, flags, permissions.PRIVATE_FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if times_of is not None:
                age_with(temp, times_of)
            publish(temp, target, overwrite=overwrite, mode=mode or permissions.PRIVATE_FILE_MODE)
        except OSError as exc:
            raise storage_error(exc, "writing", str(final)) from exc
        finally:
            discard(temp)


def age_with(path: Path, data_file: Path) -> None:
    """Give ``path`` the atime and mtime of ``data_file`` (absent: leave it as it is).

    Rewriting a sidecar (a verification result, a quality verdict) must not make it
    younger than its data file: an age-based sweep such as the documented
    ``find BACKUP_DIR -mtime +30 -delete`` would then delete the data and orphan it."""
    try:
        stat = data_file.stat()
    except FileNotFoundError:
        return
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def discard(path: Path) -> None:
    """Remove a temp file if it is still there; a missing file is not an error."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def stale_temp_files(directory: Path) -> Iterator[Path]:
    """Temp files in ``directory`` left by writers that no longer run."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        match = _TEMP_RE.match(entry.name)
        if match and not pid_alive(int(match["pid"])):
            yield entry


def remove_stale_temp_files(directory: Path, prefix: str = ".") -> list[Path]:
    """Remove the temp files (and temp directories: dataset exports, SQL import staging)
    named ``prefix…`` in ``directory`` whose writer no longer runs."""
    removed = []
    for path in stale_temp_files(directory):
        if not path.name.startswith(prefix):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            discard(path)
        removed.append(path)
    return removed
