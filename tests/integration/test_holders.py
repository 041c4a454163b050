"""The host registry of limit holders tells a SIGKILLed holder from a live one at once.

Integration half; the tests that need no server or child process are in
tests/unit/test_holders.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from dagvault.holders import Registry

# argv: registry directory, limit, lease. Holds an entry (its grant recorded) until killed.
_HOLDER = r"""
import sys, time
from pathlib import Path
from dagvault.holders import Registry
registry = Registry(Path(sys.argv[1]))
with registry.entry(sys.argv[2], "http://server/api", 1) as mine:
    with registry.asking():
        mine.record(sys.argv[3])
    print("holding", flush=True)
    time.sleep(600)
"""


def _holder(directory: Path, limit: str, lease: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory), limit, lease],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "holding\n"
    return process


def test_a_killed_holder_is_dead_at_once_and_a_live_one_is_not(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    killed = _holder(tmp_path, "db-a", "lease-killed")
    alive = _holder(tmp_path, "db-a", "lease-alive")
    other = _holder(tmp_path, "db-b", "lease-other")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        with registry.counting():
            live, dead = registry.survey("db-a")
            assert [entry.lease for entry in live] == ["lease-alive"]
            assert [holder.entry.lease for holder in dead if holder.entry] == ["lease-killed"]
            assert dead[0].entry is not None and dead[0].entry.pid == killed.pid
            for holder in dead:
                holder.remove()
        assert registry.survey("db-a") == ([live[0]], [])
    finally:
        for process in (alive, other):
            process.kill()
            process.wait()
