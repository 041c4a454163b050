"""The operations journal: what happened to a directory, whoever did it.

Every backup, restore, verification, cleanup, prune, export and import appends one
JSON line to ``.dagvault-operations.jsonl`` in the backup directory: the one it worked
on, or for exports and imports the one its caller names (BACKUP_DIR; with none given,
nothing is recorded, so a library call leaves no file behind): ``time`` (UTC),
``operation``, ``outcome`` (``success``, ``failure``, or ``quality_gate_failed`` for a
data-quality gate that failed), ``pid`` and ``host``, and when known ``seconds`` (how long
it ran) and ``details`` (an object of operation-specific facts, e.g. a restore drill's
``rto_seconds`` and ``backup``). Lines written before those two fields existed lack them;
readers (the health report, dagvault.report) treat them as unknown. The CLI, a deployment's run and
the HTTP API all write it, so the API's ``/metrics`` counters (``Tally``) count every
run, and survive a restart of the API.

A line is one ``write(2)`` on a file opened with O_APPEND (mode 0600): concurrent
writers never interleave, and a writer killed mid-way leaves at most a partial last
line, which readers skip. A journal that cannot be written costs a warning in the log,
never the operation: the backup on disk matters more than its count.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagvault import safedir
from dagvault.errors import DagvaultError, OperationInProgress

JOURNAL_FILE = ".dagvault-operations.jsonl"
SUCCESS, FAILURE, QUALITY_GATE_FAILED = "success", "failure", "quality_gate_failed"
# Bytes read per refresh step: a scrape after a long pause reads a big journal in pieces.
_READ_BYTES = 1 << 20
log = logging.getLogger(__name__)


def journal_path(directory: Path) -> Path:
    return directory / JOURNAL_FILE


def record(
    directory: Path | None,
    operation: str,
    outcome: str,
    *,
    seconds: float | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Append one line for ``operation`` to ``directory``'s journal, with how long it ran
    (``seconds``) and its ``details`` (JSON values) when given. Nothing happened to a
    directory that does not exist (bad input): nothing is recorded there, nor for None."""
    if directory is None or not directory.is_dir():
        return
    entry: dict[str, object] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "operation": operation,
        "outcome": outcome,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    if seconds is not None:
        entry["seconds"] = round(seconds, 3)
    if details is not None:
        entry["details"] = dict(details)
    # default=str: a detail that is no JSON value (a Path) is written as text, not lost.
    line = json.dumps(entry, separators=(",", ":"), default=str)
    path = journal_path(directory)
    try:
        with safedir.entry(path) as where:  # (inside the API's directories: held, see safedir)
            fd = os.open(where, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except (OSError, DagvaultError) as exc:
        log.warning("Operation %s not recorded in %s: %s", operation, path, exc)


@dataclass
class Outcome:
    failed: bool = False  # set by a block that fails without raising (a failed check)
    # Facts the block learnt and the journal keeps (cleanup's bytes_freed), set by the block.
    details: dict[str, object] | None = None


@contextlib.contextmanager
def operation(directory: Path | None, name: str) -> Iterator[Outcome]:
    """Record ``name`` as a success, or as a failure if the block raises (then re-raise)
    or sets ``failed`` on the outcome it is given, with the seconds the block ran and the
    outcome's ``details``. An operation refused because another holds the lock never
    started: it is not recorded (and leaves the directory as it was)."""
    outcome = Outcome()
    started = time.monotonic()
    try:
        yield outcome
    except OperationInProgress:
        raise
    except BaseException:
        record(
            directory, name, FAILURE, seconds=time.monotonic() - started, details=outcome.details
        )
        raise
    record(
        directory,
        name,
        FAILURE if outcome.failed else SUCCESS,
        seconds=time.monotonic() - started,
        details=outcome.details,
    )


class Tally:
    """Counts of a journal's lines by (operation, outcome), read incrementally: each
    ``counts()`` reads only what was appended since the last call. A journal replaced or
    truncated (rotated by hand) is counted again from its start; Prometheus reads the
    drop as a counter reset. Thread-safe: concurrent scrapes must not count a line twice."""

    def __init__(self, directory: Path) -> None:
        self.path = journal_path(directory)
        self._inode: int | None = None
        self._offset = 0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def counts(self) -> Counter[tuple[str, str]]:
        with self._lock:
            self._refresh()
            return Counter(self._counts)

    def _refresh(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                if stat.st_ino != self._inode or stat.st_size < self._offset:
                    self._inode, self._offset, self._counts = stat.st_ino, 0, Counter()
                fh.seek(self._offset)
                while chunk := fh.read(_READ_BYTES):
                    complete = chunk.rfind(b"\n") + 1
                    if complete == 0 and len(chunk) < _READ_BYTES:
                        break  # a partial last line: its writer has not finished (or died)
                    if complete == 0:  # a megabyte without a newline is no journal line
                        complete = len(chunk)
                    self._add(chunk[:complete])
                    self._offset += complete
                    fh.seek(self._offset)
        except FileNotFoundError:
            self._inode, self._offset, self._counts = None, 0, Counter()
        except OSError as exc:
            log.warning("Cannot read the operations journal %s: %s", self.path, exc)

    def _add(self, lines: bytes) -> None:
        for line in lines.splitlines():
            try:
                entry = json.loads(line)
                key = (str(entry["operation"]), str(entry["outcome"]))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: count the others
            self._counts[key] += 1
