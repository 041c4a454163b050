"""Issue #20 on a real `dagvault api` process: bodies are read only from authenticated
callers and only up to the cap, request names that layers could read differently are
refused before anything is written, the token comes from a private file, the audit log
names every client and cannot be flooded, and /docs needs no CDN.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_api_hardening.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault_api.audit import AuditLog


def test_the_cap_setting_is_validated() -> None:
    assert load_settings(environ={}).api_max_body_bytes == 256 * 1024
    assert load_settings(environ={"DAGVAULT_API_MAX_BODY_BYTES": "1048576"}).api_max_body_bytes
    with pytest.raises(ConfigError, match="DAGVAULT_API_MAX_BODY_BYTES"):
        load_settings(environ={"DAGVAULT_API_MAX_BODY_BYTES": "0"})


def test_each_minute_of_suppressed_lines_is_closed_by_a_summary(tmp_path: Path) -> None:
    now = [1000.0]
    audit = AuditLog(tmp_path / "audit.jsonl", denied_per_minute=3, clock=lambda: now[0])
    for n in range(10):
        audit.record(limited=True, client=f"10.0.0.{n % 2}", result="denied", status=401)
    audit.record(client="10.0.0.9", result="success", status=200)  # never limited
    now[0] += 61
    audit.record(limited=True, client="10.0.0.1", result="denied", status=401)
    audit.close()  # nothing suppressed in this minute: no second summary
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [e["result"] for e in lines] == [*["denied"] * 3, "success", "suppressed", "denied"]
    assert lines[4]["suppressed"] == 7 and lines[4]["clients"] == {"10.0.0.1": 4, "10.0.0.0": 3}
