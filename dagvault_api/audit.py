"""The audit log: one JSON line per mutating request (who, from where, what, when, result).

Lines are appended by dagvault.auditlog (one write(2) each, O_APPEND, fsynced, 0600), so
concurrent requests never interleave and an acknowledged operation's line survives a crash.

Requests of callers who are not authenticated (refused with 401, or answered 405 or 400
before that) cost an attacker nothing, so their lines are rate-limited: at most
DENIED_PER_MINUTE in a minute; the rest are counted, and one ``suppressed`` line per minute
(and at shutdown) gives their number and the addresses that sent most of them. Every line of
an authenticated caller (operations run, failed or invalid) is always written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagvault import auditlog
from dagvault.errors import DagvaultError, storage_error

log = logging.getLogger("dagvault.api")

# Denied-request lines written per minute; at ~300 bytes each, at most ~25 MB a day however
# many requests are refused. Default: 60 (one a second, plenty to see who is knocking).
DENIED_PER_MINUTE = 60
WINDOW_SECONDS = 60.0
# Addresses counted by name in a summary; more distinct ones are counted as "other", so a
# summary line stays small whatever the number of senders.
NAMED_CLIENTS = 100
SHOWN_CLIENTS = 10


class AuditLog:
    def __init__(
        self,
        path: Path,
        denied_per_minute: int = DENIED_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.denied_per_minute = denied_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._window_since = auditlog.now()
        self._denied_written = 0
        self._suppressed: Counter[str] = Counter()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:  # at start: a server that cannot audit must not serve
            raise storage_error(exc, "opening the audit log", str(path)) from exc

    def record(self, *, limited: bool = False, **entry: Any) -> None:
        """Append one line; a ``limited`` one (an unauthenticated caller's) only within the
        minute's allowance."""
        with self._lock:
            text = self._roll_window(self._clock())
            if limited:
                if self._denied_written >= self.denied_per_minute:
                    self._count_suppressed(str(entry.get("client")))
                    if text:
                        self._append(text)
                    return
                self._denied_written += 1
            self._append(text + auditlog.line(**entry))

    def close(self) -> None:
        """At shutdown: the current minute's count of suppressed lines."""
        with self._lock:
            text = self._summary()
            if text:
                self._append(text)

    def _roll_window(self, now: float) -> str:
        """The summary of a minute that has ended ("" if nothing was suppressed)."""
        if now - self._window_start < WINDOW_SECONDS:
            return ""
        text = self._summary()
        self._window_start, self._window_since, self._denied_written = now, auditlog.now(), 0
        return text

    def _count_suppressed(self, client: str) -> None:
        if client in self._suppressed or len(self._suppressed) < NAMED_CLIENTS:
            self._suppressed[client] += 1
        else:
            self._suppressed["other"] += 1

    def _summary(self) -> str:
        if not self._suppressed:
            return ""
        total = sum(self._suppressed.values())
        clients = dict(self._suppressed.most_common(SHOWN_CLIENTS))
        self._suppressed = Counter()
        return auditlog.line(
            result="suppressed", since=self._window_since, suppressed=total, clients=clients
        )

    def _append(self, text: str) -> None:
        try:
            auditlog.append_text(self.path, text)
        except DagvaultError as exc:
            # The operation already happened; losing its line must at least be loud.
            log.error("Could not write the audit log %s: %s", self.path, exc.message)
