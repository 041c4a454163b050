"""Who may read what dagvault writes: never more accounts than may read the ledger.

A backup, a pre-restore copy or an export holds the whole ledger, so each file dagvault
creates takes the permission bits of the database it came from (a 0600 ledger gives
0600 backups, a 0640 one 0640), and each directory it creates is 0700. Files are
*created* owner-only (umask 077 while an operation runs) and only widened to the
ledger's bits when they are published: a file briefly created 0644 could be opened by
another account during the copy, and an open descriptor outlives any later chmod.

The umask is process-wide, so ``owner_only`` is reference-counted: the API runs several
operations in threads, and the last one to finish puts the caller's umask back.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_OWNER_ONLY_UMASK = 0o077

_lock = threading.Lock()
_depth = 0
_saved_umask = 0
# The permission bits files published by the current operation get (None: left as created).
_file_mode: ContextVar[int | None] = ContextVar("dagvault_file_mode", default=None)


def restrict_process_umask() -> None:
    """For the CLI and API processes: everything they create (reports, audit log, Prefect's
    temporary server files) is owner-only; a stricter umask of the caller is kept."""
    os.umask(os.umask(_OWNER_ONLY_UMASK) | _OWNER_ONLY_UMASK)


def mode_of(path: Path, default: int = PRIVATE_FILE_MODE) -> int:
    """``path``'s read/write bits (never execute, setuid or sticky), or ``default``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o666
    except OSError:
        return default


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Create files 0600 and directories 0700 until the outermost such block ends."""
    global _depth, _saved_umask
    with _lock:
        if _depth == 0:
            _saved_umask = os.umask(_OWNER_ONLY_UMASK)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.umask(_saved_umask)


@contextlib.contextmanager
def files_like(source: Path) -> Iterator[int]:
    """Within this block files are created owner-only and published with ``source``'s
    permission bits (0600 when it cannot be read); yields those bits."""
    mode = mode_of(source)
    token = _file_mode.set(mode)
    try:
        with owner_only():
            yield mode
    finally:
        _file_mode.reset(token)


def published_mode() -> int | None:
    """The bits a file published now should get (set by ``files_like``), if any."""
    return _file_mode.get()


def apply(path: Path | str, mode: int | None = None) -> None:
    """Give the not-yet-published ``path`` the current operation's file mode (never
    through a symbolic link swapped in for it: that would change another file's mode)."""
    mode = published_mode() if mode is None else mode
    if mode is not None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def exposure_warnings(backup_dir: Path, database: Path | None = None) -> list[str]:
    """What lets accounts other than the ledger's readers read or change the backups."""
    warnings: list[str] = []
    try:
        bits = stat.S_IMODE(os.stat(backup_dir).st_mode)
    except OSError:
        return warnings
    ledger_bits = mode_of(database, PRIVATE_FILE_MODE) if database else PRIVATE_FILE_MODE
    if bits & stat.S_IWOTH and not bits & stat.S_ISVTX:
        warnings.append(
            f"backup directory {backup_dir} is writable by every local account "
            f"(mode {bits:04o}): anyone may replace or delete backups; chmod 700 it"
        )
    if bits & (stat.S_IROTH | stat.S_IXOTH) and not ledger_bits & stat.S_IROTH:
        warnings.append(
            f"backup directory {backup_dir} is open to every local account (mode {bits:04o}) "
            "while the ledger is not; chmod 700 it"
        )
    wider = sum(1 for f in _backup_files(backup_dir) if mode_of(f, 0) & ~ledger_bits & 0o066)
    if wider:
        warnings.append(
            f"{wider} file(s) in {backup_dir} are readable by more accounts than the ledger; "
            f"chmod them to {ledger_bits:04o}"
        )
    return warnings


def _backup_files(directory: Path) -> Iterator[Path]:
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                yield Path(entry.path)
