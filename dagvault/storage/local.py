"""A target directory on a local or mounted filesystem (``file:///mnt/disk2/backups``).

Objects are plain files, written temp → fsync → rename → fsync(dir) (dagvault.fsio), so
an unencrypted copy here is also an ordinary backup directory that every command can
use by its path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from dagvault.errors import BackupNotFound, storage_error
from dagvault.fsio import discard, ensure_dir, fsync_dir, publish, temp_path, write_atomic
from dagvault.storage import StoredObject
from dagvault.storage.throttle import CHUNK_BYTES, Throttle


class LocalStore:
    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / name

    def location(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"

    def _missing(self, name: str) -> BackupNotFound:
        return BackupNotFound(
            f"{self.location(name)} does not exist",
            f"List what the target holds with `dagvault list --backup-dir {self.url}`.",
        )

    def list(self) -> dict[str, StoredObject]:
        if not self.directory.is_dir():
            return {}
        found = {}
        for entry in self.directory.iterdir():
            if entry.name.startswith("."):
                continue  # temp files, locks
            try:
                if entry.is_file():
                    found[entry.name] = StoredObject(entry.name, entry.stat().st_size)
            except FileNotFoundError:
                continue  # removed while we listed
        return found

    def upload(self, local: Path, name: str, *, throttle: Throttle | None = None) -> None:
        ensure_dir(self.directory)
        final = self._path(name)
        temp = temp_path(final)
        try:
            if throttle is None:
                shutil.copyfile(local, temp)
            else:
                _paced_copy(local, temp, throttle)
            with open(temp, "rb+") as fh:
                fh.flush()
                os.fsync(fh.fileno())
            publish(temp, final, overwrite=True)
        except OSError as exc:
            raise storage_error(exc, "copying to", str(final)) from exc
        finally:
            discard(temp)

    def write(self, name: str, data: bytes) -> None:
        ensure_dir(self.directory)
        write_atomic(self._path(name), data)

    def read(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise self._missing(name) from None
        except OSError as exc:
            raise storage_error(exc, "reading", str(self._path(name))) from exc

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
            fsync_dir(self.directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise storage_error(exc, "removing", str(self._path(name))) from exc


def _paced_copy(source: Path, dest: Path, throttle: Throttle) -> None:
    throttle.begin()
    with open(source, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            throttle.sent(len(chunk))
