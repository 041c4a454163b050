"""The host registry of limit holders tells a SIGKILLed holder from a live one at once.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_holders.py."""

from __future__ import annotations

from pathlib import Path

from dagvault.holders import Registry


def test_an_entry_is_removed_when_its_block_ends(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    with registry.entry("db-a", "temporary", 1):
        assert len(list(tmp_path.glob("*.json"))) == 1
        assert registry.survey("db-a")[0][0].lease is None  # live, still waiting
    assert not list(tmp_path.glob("*.json"))
