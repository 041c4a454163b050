"""Appending JSON lines to an audit log: one write(2) to a file opened O_APPEND and
fsynced, so concurrent writers never interleave and an acknowledged line survives a
crash. The file is created 0600: it names users and paths."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault.errors import storage_error


def now() -> str:
    return datetime.now(UTC).isoformat()


def line(**entry: Any) -> str:
    """One audit line: ``entry`` after the time it is written."""
    return json.dumps({"time": now(), **entry}, default=str) + "\n"


def append_text(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) to ``path``; StorageError if it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, "writing the audit log", str(path)) from exc


def append(path: Path, **entry: Any) -> None:
    """Append ``entry`` (with the time) to ``path``; StorageError if it cannot be written."""
    append_text(path, line(**entry))
