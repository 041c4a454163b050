"""Fault injection for the fault suite: one dagvault operation in a child process,
SIGKILLed at a chosen point.

A point is either a *filesystem call* (the n-th call of os.open/fsync/link/rename/
replace/unlink/mkdir/rmdir made by the operation: exactly between two steps of
temp → fsync → rename → sidecar) or a *moment* (a random time into the run: inside
SQLite's page copy, the checksum pass, DuckDB's writes, where Python makes no calls).
"""

from __future__ import annotations

import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STRESS = os.environ.get("DAGVAULT_STRESS", "") not in ("", "0")


def points(ci: int, stress: int = 20) -> int:
    """How many fault points a test injects: a bounded number in CI, ``stress`` otherwise."""
    return stress if STRESS else ci


# argv: operation code (defines run() from ARGS), kill_at (0: never), ARGS...
_CHILD = r"""
import json, os, signal, sys
source, kill_at, ARGS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls, armed = 0, False

def tripwire(call):
    def wrapped(*args, **kwargs):
        global calls
        if armed:
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return call(*args, **kwargs)
    return wrapped

for name in ("open", "fsync", "link", "rename", "replace", "unlink", "mkdir", "rmdir"):
    setattr(os, name, tripwire(getattr(os, name)))
exec(source)  # imports dagvault and defines run()
print("ready", flush=True)
armed = True
result = run()
armed = False
print(json.dumps({"calls": calls, "result": result}), flush=True)
"""


@dataclass(frozen=True)
class Outcome:
    killed: bool
    calls: int  # filesystem calls of a run that finished
    seconds: float  # from "ready" to the end of the run or the kill
    result: Any


def run_child(
    operation: str,
    *args: object,
    kill_at: int = 0,
    kill_after: float | None = None,
    timeout: float = 180,
) -> Outcome:
    """Run ``operation`` (Python source defining ``run()`` over ``ARGS``) in a child;
    SIGKILL it at its ``kill_at``-th filesystem call or ``kill_after`` seconds in."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, operation, str(kill_at), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        ready = _read_line(child.stdout.fileno())
        assert ready == "ready", (ready, child.communicate(timeout=timeout))
        started = time.monotonic()
        if kill_after is not None:
            try:
                child.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=timeout)
        seconds = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode == -signal.SIGKILL:
        return Outcome(True, 0, seconds, None)
    assert child.returncode == 0, err.decode(errors="replace")
    reply = json.loads(out.decode().strip().splitlines()[-1])
    return Outcome(False, reply["calls"], seconds, reply["result"])


def _read_line(fd: int) -> str:
    """One line, read unbuffered: communicate() reads the rest from the descriptor itself,
    past any buffer a readline() would have filled."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return line.decode().strip()


@dataclass(frozen=True)
class KillPoint:
    kill_at: int = 0
    kill_after: float | None = None

    def __str__(self) -> str:
        if self.kill_at:
            return f"filesystem call {self.kill_at}"
        return f"{self.kill_after:.3f} s in"


def kill_points(rng: random.Random, count: int, reference: Outcome) -> list[KillPoint]:
    """``count`` points spread over a run like ``reference`` (a run that finished):
    alternately a random filesystem call and a random moment (up to 10% past its end)."""
    chosen = []
    for n in range(count):
        if n % 2 == 0 and reference.calls:
            chosen.append(KillPoint(kill_at=rng.randint(1, reference.calls)))
        else:
            chosen.append(KillPoint(kill_after=rng.uniform(0, reference.seconds * 1.1)))
    return chosen


class Figures:
    """Rows of figures per section, in the order the tests ran."""

    def __init__(self) -> None:
        self.sections: dict[str, list[dict[str, Any]]] = {}

    def add(self, section: str, **row: Any) -> None:
        self.sections.setdefault(section, []).append(row)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "stress" if STRESS else "ci",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}",
            "totals": self.totals(),
            "sections": self.sections,
        }
        (directory / "reliability.json").write_text(json.dumps(document, indent=2) + "\n")
        (directory / "reliability.md").write_text(self.markdown(document))
        return directory / "reliability.md"

    def totals(self) -> dict[str, int]:
        rows = [row for section in self.sections.values() for row in section]
        return {
            key: sum(int(row.get(key, 0)) for row in rows)
            for key in ("faults_injected", "faults_detected", "data_lost")
        }

    @staticmethod
    def markdown(document: dict[str, Any]) -> str:
        totals = document["totals"]
        lines = [
            f"Fault suite ({document['mode']} run, {document['generated_at']}; "
            f"{document['machine']})",
            "",
            f"Faults injected: {totals['faults_injected']}; detected or survived as "
            f"specified: {totals['faults_detected']}; data lost: {totals['data_lost']}.",
        ]
        for name, rows in document["sections"].items():
            columns = list(dict.fromkeys(key for row in rows for key in row))
            lines += ["", f"**{name}**", "", "| " + " | ".join(columns) + " |"]
            lines.append("|" + "|".join("---" for _ in columns) + "|")
            lines += [
                "| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows
            ]
        return "\n".join(lines) + "\n"
