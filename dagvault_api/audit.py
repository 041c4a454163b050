"""The audit log: one JSON line per mutating request (who, what, when, result).

Lines are appended with one write(2) each to a file opened O_APPEND and fsynced, so
concurrent requests never interleave and an acknowledged operation's line survives a
crash. The file is created 0600: it names clients and paths.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault.errors import storage_error

log = logging.getLogger("dagvault.api")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:  # at start: a server that cannot audit must not serve
            raise storage_error(exc, "opening the audit log", str(path)) from exc

    def record(self, **entry: Any) -> None:
        line = json.dumps({"time": datetime.now(UTC).isoformat(), **entry}, default=str) + "\n"
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                # The operation already happened; losing its line must at least be loud.
                log.error("Could not write the audit log %s: %s", self.path, exc.strerror)
