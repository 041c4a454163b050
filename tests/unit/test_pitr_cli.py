"""`list`, `restore --at` refusals and `health` in-process: the parts of point-in-time
restore and the RPO that start no flow run (tests/integration/test_pitr.py runs the rest)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions, make_odd_ledger, run_main

from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.recovery import parse_time


@pytest.fixture
def node(tmp_path: Path) -> tuple[list[str], list[str]]:
    """A ledger with a full and two incremental backups; its flags and the points' moments."""
    db = make_odd_ledger(tmp_path / "node.db", 10, blob_size=1_000)
    config = tmp_path / "odd.json"
    config.write_text(json.dumps(ODD_LEDGER_CONFIG))
    profile = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
    moments = []
    for kind in ("full", "incremental", "incremental"):
        add_odd_transactions(db, 2, blob_size=1_000)
        moments.append(create_backup(db, tmp_path / "b", kind=kind, profile=profile).created_at)
    flags = ["--config", str(config), "--db", str(db), "--backup-dir", str(tmp_path / "b")]
    return flags, moments


def test_list_shows_the_recovery_points_and_the_window(
    node: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    flags, moments = node
    code, out, err = run_main(["list", *flags], tmp_path)
    assert code == 0, err
    assert f"recovery window: {moments[0]} to {moments[-1]} (3 recovery points)" in out
    assert all(moment in out for moment in moments)
    code, out, err = run_main(["list", *flags, "--json", "--limit", "1"], tmp_path)
    assert code == 0, err
    [newest] = json.loads(out)
    assert newest["recovery_point_at"] == moments[-1]
    assert newest["recovery_window"] == {
        "from": moments[0],
        "to": moments[-1],
        "recovery_points": 3,
    }


def test_restore_at_outside_the_window_is_refused_before_anything_runs(
    node: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    flags, moments = node
    db = Path(flags[3])
    before = db.read_bytes()
    early = f"{parse_time(moments[0]) - 3600:.0f}"
    for argv, words in (
        (["--at", early], "before the oldest recovery point; the recovery window is"),
        (["--at", "2999-01-01T00:00:00Z"], "in the future; the recovery window is"),
        (["--at", "yesterday"], "is not a time"),
        (["x.db", "--at", early], "not both"),
        ([], "not both"),
    ):
        code, _, err = run_main(["restore", *argv, *flags], tmp_path)
        assert code == 2, (argv, err)
        assert words in err and "Try:" in err and "Traceback" not in err, (argv, err)
        if "window" in words:
            assert moments[0] in err and moments[-1] in err
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("node.db.pre_restore_*"))


def test_health_prints_the_rpo_and_is_degraded_above_the_target(
    node: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    flags, moments = node
    code, out, err = run_main(["health", *flags, "--json"], tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert report["rpo_seconds"] == 0 and report["newest_recovery_point"] == moments[-1]
    time.sleep(1.2)  # past the newest backup's own closing checkpoint (dagvault.rpo)
    add_odd_transactions(Path(flags[3]), 1, blob_size=1_000)  # now older than 1 s
    config = Path(flags[1])
    config.write_text(json.dumps({**ODD_LEDGER_CONFIG, "backup": {"rpo_target_seconds": 1}}))
    code, out, err = run_main(["health", *flags], tmp_path)
    assert code == 8, out + err
    assert re.search(r"RPO      : \d+ s: the ledger changed since the newest recovery point", out)
    assert "is above the target of 1 s" in out
