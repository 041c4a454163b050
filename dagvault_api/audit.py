"""The audit log: one JSON line per mutating request (who, what, when, result), appended
by dagvault.auditlog (O_APPEND, fsynced, 0600)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from dagvault import auditlog
from dagvault.errors import DagvaultError, storage_error

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
        with self._lock:
            try:
                auditlog.append(self.path, **entry)
            except DagvaultError as exc:
                # The operation already happened; losing its line must at least be loud.
                log.error("Could not write the audit log %s: %s", self.path, exc.message)
