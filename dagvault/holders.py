"""Who on this host waits for or holds a slot of a shared limit, and whether they live.

Every such run keeps an entry: a small JSON file in one shared directory, flocked by the
run for its whole life. The kernel drops that flock the moment the process dies (SIGKILL,
OOM killer, power loss), so another run tells a dead holder from a live one at once, and
without trusting pids (they are reused). An entry says which limit and server it is for,
how many slots it takes, and, once granted, the lease that holds them.

Two directory-wide locks keep counting exact: a run asks for its slots and records the
grant while holding ``.lock`` shared; a run that counts the live holders holds it
exclusively, so it never sees a slot granted but not yet recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dagvault.errors import storage_error


@dataclass(frozen=True)
class Entry:
    limit: str
    server: str
    slots: int
    host: str
    pid: int
    since: float
    lease: str | None = None  # None: still waiting (or killed before recording its grant)

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()


class Held:
    """This process's own entry, flocked until the ``with`` block of ``Registry.entry`` ends."""

    def __init__(self, fd: int, entry: Entry) -> None:
        self._fd = fd
        self.entry = entry

    def record(self, lease: str) -> None:
        """Note the granted lease (call it under ``Registry.asking``)."""
        self.entry = Entry(**{**self.entry.__dict__, "lease": lease})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, self.entry.to_json(), 0)


@dataclass(frozen=True)
class Dead:
    """The entry of a process that died; ``remove`` it once its slots are given back."""

    path: Path
    fd: int
    entry: Entry | None  # None: unreadable (killed while writing it)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)

    def leave(self) -> None:
        """Not ours to give back (another server's): leave it for a run of that server."""
        os.close(self.fd)


class Registry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        fd = self._open(self.directory / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def asking(self) -> contextlib.AbstractContextManager[None]:
        """Hold while asking the server for slots and recording the grant."""
        return self._lock(fcntl.LOCK_SH)

    def counting(self) -> contextlib.AbstractContextManager[None]:
        """Hold while counting live holders and giving back the slots of dead ones."""
        return self._lock(fcntl.LOCK_EX)

    def _open(self, path: Path, flags: int) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o644)
        except OSError as exc:
            raise storage_error(exc, "opening the holder registry", str(path)) from exc

    @contextlib.contextmanager
    def entry(self, limit: str, server: str, slots: int) -> Iterator[Held]:
        """This process's entry for the life of the block; removed when it ends. It is
        flocked before it gets its name, so no one ever sees it unlocked while we live."""
        name = uuid.uuid4().hex
        staging = self.directory / f".{name}.tmp"
        fd = self._open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        held = Held(fd, Entry(limit, server, slots, socket.gethostname(), os.getpid(), time.time()))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, held.entry.to_json(), 0)
            os.rename(staging, self.directory / f"{name}.json")
            yield held
        finally:
            for path in (staging, self.directory / f"{name}.json"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            os.close(fd)

    def survey(self, limit: str) -> tuple[list[Entry], list[Dead]]:
        """The live entries of ``limit`` (and every entry of another host: we cannot tell),
        and the dead entries of this host, still flocked by us until removed."""
        here = socket.gethostname()
        live: list[Entry] = []
        dead: list[Dead] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # its run just ended
            entry = _read(fd)
            if entry is not None and (entry.limit != limit or entry.host != here):
                os.close(fd)
                if entry.limit == limit:
                    live.append(entry)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if entry is not None:
                    live.append(entry)
                continue
            dead.append(Dead(path, fd, _read(fd)))
        return live, dead


def _read(fd: int) -> Entry | None:
    try:
        return Entry(**json.loads(os.pread(fd, 65536, 0)))
    except (ValueError, TypeError):
        return None
