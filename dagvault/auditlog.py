"""Appending one JSON line to an audit log: one write(2) to a file opened O_APPEND and
fsynced, so concurrent writers never interleave and an acknowledged line survives a
crash. The file is created 0600: it names users and paths."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault.errors import storage_error


def append(path: Path, **entry: Any) -> None:
    """Append ``entry`` (with the time) to ``path``; StorageError if it cannot be written."""
    line = json.dumps({"time": datetime.now(UTC).isoformat(), **entry}, default=str) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, "writing the audit log", str(path)) from exc
