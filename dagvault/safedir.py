"""Directories held open: the directory that was checked is the one that is written.

A path is a name, resolved again at every use: when another account may write inside the
backup directory, it can swap ``backups/race`` for a symbolic link between the API's check
and the core's write, and the backup (a full copy of the ledger), its lock file and its
journal line land outside. A ``HeldDir`` resolves a directory once into an open file
descriptor; everything written through it goes into that very directory, whatever its
name points to afterwards.

Inside the roots of ``confined()`` (the API's BACKUP_DIR and EXPORT_DIR) a directory is
opened from its root one component at a time with ``O_NOFOLLOW``: a symbolic link below
the root is refused, never followed (the API's path check has already replaced any
symbolic link pointing inside the root by its target). Outside them a directory is the
operator's choice (``--backup-dir``): it is opened as named, symbolic links included,
once.

Library code that needs a path (SQLite, DuckDB, the page-reading helper process) gets
``io_path(name)``: ``/proc/<pid>/fd/<fd>/<name>``, which the kernel resolves through the
descriptor, not through the directory's name. ``shown()`` turns such a path back into the
directory's name for results and messages. SQLite alone re-resolves ``/proc`` paths by
name (it canonicalises symbolic links itself): see ``snapshot.snapshot_to_file``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType

from dagvault.errors import DagvaultError, StorageError, storage_error
from dagvault.permissions import PRIVATE_DIR_MODE

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

# The trusted roots of the current operation (absolute, as configured): see ``confined``.
_roots: ContextVar[tuple[Path, ...]] = ContextVar("dagvault_confined_roots", default=())


@contextlib.contextmanager
def confined(*roots: Path) -> Iterator[None]:
    """Within this block (this thread and the Prefect tasks it runs), directories at or
    below one of ``roots`` are opened from that root without following symbolic links."""
    token = _roots.set(tuple(root.absolute() for root in roots))
    try:
        yield
    finally:
        _roots.reset(token)


def _confinement(directory: Path) -> tuple[Path, Path] | None:
    """(root, path below it) when ``directory`` is inside a root of ``confined``."""
    absolute = directory.absolute()
    for root in _roots.get():
        if absolute.is_relative_to(root):
            return root, absolute.relative_to(root)
    return None


class HeldDir:
    """An open directory: ``fd`` for ``*at`` calls, ``path`` (its name) for messages."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, directory: Path, *, create: bool = False) -> HeldDir:
        """Hold ``directory`` (``create``: made 0700 with missing parents first)."""
        confinement = _confinement(directory)
        try:
            if confinement is None:
                if create:
                    _make_dirs(directory)
                return cls(os.open(directory, _DIR_FLAGS), directory)
            root, below = confinement
            return cls(_walk(root, below, create, directory), directory)
        except DagvaultError:
            raise
        except OSError as exc:
            raise storage_error(exc, "opening directory", str(directory)) from exc

    @property
    def io(self) -> Path:
        """This directory as a path the kernel resolves through the descriptor (the pid,
        not ``self``: a helper process opens it too)."""
        return Path(f"/proc/{os.getpid()}/fd/{self.fd}")

    def io_path(self, name: str) -> Path:
        return self.io / name

    def shown(self, path: Path) -> Path:
        """``path`` (below ``io``) under the directory's name."""
        try:
            return self.path / path.relative_to(self.io)
        except ValueError:
            return path

    def reach(self, path: Path) -> Path:
        """``path`` (under the directory's name) below ``io``; any other path as it is."""
        try:
            return self.io / path.relative_to(self.path)
        except ValueError:
            return path

    def show(self, text: str) -> str:
        """``text`` with this directory's ``/proc`` path (not another fd's) replaced."""
        return re.sub(re.escape(str(self.io)) + r"(?![0-9])", lambda _: str(self.path), text)

    def rename_in(self, exc: BaseException) -> None:
        """Make ``exc``'s message name the directory, not its ``/proc`` path."""
        if isinstance(exc, DagvaultError):
            exc.message, exc.hint = self.show(exc.message), self.show(exc.hint)
            exc.args = (exc.message, *exc.args[1:])

    @contextlib.contextmanager
    def naming_errors(self) -> Iterator[None]:
        """Errors raised in this block name the directory, not its ``/proc`` path."""
        try:
            yield
        except BaseException as exc:
            self.rename_in(exc)
            raise

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> HeldDir:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _make_dirs(directory: Path) -> None:
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it meanwhile
            new.mkdir(mode=PRIVATE_DIR_MODE)


def _walk(root: Path, below: Path, create: bool, shown: Path) -> int:
    """Open ``root`` (trusted: the operator configured it), then each component of
    ``below`` relative to its parent's descriptor, refusing symbolic links."""
    if create:
        _make_dirs(root)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in below.parts:
            if part in ("", "."):
                continue
            if part == "..":
                raise StorageError(f"{shown}: '..' is not allowed below {root}")
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, PRIVATE_DIR_MODE, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise _not_a_directory(shown, part, fd) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_directory(shown: Path, part: str, parent: int) -> StorageError:
    try:
        link = stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        link = False
    what = "a symbolic link" if link else "not a directory"
    return StorageError(
        f"{shown}: {part!r} is {what}; refusing to follow it (it may have been swapped "
        "while the request ran, to redirect the files outside the configured directory)",
        "Make it a plain directory inside the configured directory and send the request "
        "again; check who else can write there.",
    )


@contextlib.contextmanager
def directory(path: Path) -> Iterator[Path]:
    """``path`` as a directory path that cannot leave its root (``confined``) while the
    block runs: the directory is held; outside the roots, ``path`` itself."""
    if _confinement(path) is None:
        yield path
        return
    with HeldDir.open(path) as held, held.naming_errors():
        yield held.io


@contextlib.contextmanager
def entry(path: Path) -> Iterator[Path]:
    """``path`` as a file path that cannot leave its directory's root (``confined``)."""
    with directory(path.parent) as where:
        yield where / path.name
