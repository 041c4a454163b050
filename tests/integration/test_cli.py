"""The `dagvault` command as a user runs it: a real subprocess per command, the session's
real Prefect server, real SQLite files in tmp_path.

Each command that runs a flow costs several seconds (Prefect's import and the flow run;
more with the data-quality gate), so the scenarios below chain many checks per test.

Integration half; the tests that need no server or child process are in
tests/unit/test_cli.py."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from _helpers import LOCK_NAME, content_digest

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.checksum import sha3_256_file
from dagvault.journal import JOURNAL_FILE
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file
from dagvault_cli.output import human_bytes

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest


def run_json(cli: CliRunner, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a command with --json: exit 0 and stdout is one JSON document, nothing else."""
    proc = cli(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_fails(proc: subprocess.CompletedProcess[str], exit_code: int, *fragments: str) -> None:
    """A failure as the CLI reports it: the exit code of its class, `Error: …` and
    `Try: …` on stderr, no traceback."""
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("Error: ") for line in lines), proc.stderr
    assert any(line.startswith("Try: ") for line in lines), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def start_cli(
    api_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Like the `cli` fixture, but without waiting: for commands that must overlap."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagvault_cli", *args],
        cwd=cwd,
        env={**os.environ, "PREFECT_API_URL": api_url, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def corrupt(path: Path) -> None:
    """Flip one byte in the middle of the file (inside the b-tree pages)."""
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def closed_port() -> int:
    """A local TCP port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def data_files(directory: Path) -> list[str]:
    """Everything in a backup directory except the lock file and operations journal."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name not in (LOCK_NAME, JOURNAL_FILE))


def test_end_to_end(cli: CliRunner, tmp_path: Path) -> None:
    stats = run_json(cli, "sample-ledger", "blockchain.db", "--transactions", "300", "--seed", "7")
    assert stats["transactions"] == 300
    db = tmp_path / "blockchain.db"
    older = create_backup(db, tmp_path / "backups", description="older")

    # backup: JSON on stdout only, even with Prefect's INFO logs on (-v); logs go to stderr.
    proc = cli(
        "backup", "--description", "x", "--json", "-v", env={"PREFECT_LOGGING_LEVEL": "INFO"}
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert "📦 Database backup created" in proc.stderr
    assert "Finished in state Completed" in proc.stderr
    backup = tmp_path / info["backup_path"]
    assert backup.parent == tmp_path / "backups" and backup.is_file()
    assert info["verification"]["status"] == "verified"
    assert info["metadata"]["description"] == "x"
    assert (info["total_transactions"], info["backup_type"]) == (300, "Full")
    assert info["checksum"] == sha3_256_file(backup)
    assert info["file_size"] == backup.stat().st_size

    listed = run_json(cli, "list")
    assert [tmp_path / e["backup_path"] for e in listed] == [backup, Path(older.backup_path)]
    newest = listed[0]
    for field in ("timestamp", "backup_path", "file_size", "total_transactions", "backup_type"):
        assert newest[field] == info[field], field
    assert (newest["description"], newest["verification"]) == ("x", "verified")
    assert (listed[1]["description"], listed[1]["verification"]) == ("older", "unverified")

    verified = run_json(cli, "verify", "--all")
    assert verified["valid"] is True and verified["error"] is None
    assert sorted(tmp_path / r["backup_path"] for r in verified["reports"]) == sorted(
        [backup, Path(older.backup_path)]
    )
    assert all(r["valid"] for r in verified["reports"])

    older_files = [Path(older.backup_path), Path(older.backup_path + ".meta")]
    plan = run_json(cli, "cleanup", "--keep", "1", "--dry-run")
    assert plan["dry_run"] is True and plan["removed_files"] == []
    assert (plan["kept"], plan["removed_backups"]) == (1, 1)
    assert plan["bytes_freed"] == sum(p.stat().st_size for p in older_files)
    assert all(p.exists() for p in older_files)

    proc = cli("cleanup", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 backups (2 files)" in proc.stdout
    assert f"{human_bytes(plan['bytes_freed'])} freed" in proc.stdout
    assert not any(p.exists() for p in older_files) and backup.is_file()

    outcome = run_json(cli, "schedule", "--run-if-due")  # not due: nothing is taken
    plan = outcome["schedule"]
    assert set(plan) == {"last_backup", "next_backup", "interval_hours", "backup_dir", "is_due"}
    assert plan["is_due"] is False and outcome["backup"] is None
    assert plan["last_backup"] == info["timestamp"]
    assert plan["next_backup"] == info["timestamp"] + 24 * 3600
    assert data_files(tmp_path / "backups") == [backup.name, backup.name + ".meta"]

    schedule_args = ("schedule", "--interval-hours", "6", "--backup-dir", "fresh")
    outcome = run_json(cli, *schedule_args)
    assert outcome["schedule"]["is_due"] is True and outcome["schedule"]["interval_hours"] == 6
    assert outcome["schedule"]["last_backup"] == 0 and outcome["backup"] is None
    assert data_files(tmp_path / "fresh") == []
    outcome = run_json(cli, *schedule_args, "--run-if-due")
    taken = tmp_path / outcome["backup"]["backup_path"]
    assert taken.parent == tmp_path / "fresh" and taken.is_file()
    assert outcome["schedule"]["is_due"] is False
    assert outcome["schedule"]["last_backup"] == outcome["backup"]["timestamp"]

    # restore: the live ledger moves on, then is put back to the backup's content.
    proc = cli("sample-ledger", "blockchain.db", "--append", "--transactions", "40", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    backed_up, moved_on = content_digest(backup), content_digest(db)
    assert backed_up != moved_on
    copy_database(db, tmp_path / "other.db")
    result = run_json(cli, "restore", info["backup_path"], "--db", "other.db")
    assert result["success"] is True
    assert result["backup_info"]["checksum"] == info["checksum"]
    assert content_digest(tmp_path / "other.db") == backed_up
    assert content_digest(db) == moved_on  # the live database was not touched

    proc = cli("restore", info["backup_path"])
    assert proc.returncode == 0, proc.stderr
    assert "restored from" in proc.stdout
    assert content_digest(db) == backed_up
    (pre,) = [p for p in tmp_path.glob("blockchain.db.pre_restore_*") if p.suffix != ".meta"]
    assert re.fullmatch(r"blockchain\.db\.pre_restore_\d+", pre.name)
    assert f"pre-restore backup: {pre.name}" in proc.stdout
    assert content_digest(pre) == moved_on


def test_failures_exit_with_their_code_and_a_hint(
    cli: CliRunner, prefect_api_url: str, ledger: Path, tmp_path: Path
) -> None:
    # Good backups and one corrupted among them.
    backups = tmp_path / "bk"
    good1 = create_backup(ledger, backups)
    bad = Path(create_backup(ledger, backups).backup_path)
    good2 = create_backup(ledger, backups)
    corrupt(bad)
    (tmp_path / "notsqlite.db").write_text("a ledger, honestly\n" * 100)
    (tmp_path / "a-file").write_text("not a directory")
    locked = tmp_path / "locked.db"
    copy_database(ledger, locked)
    live = ledger.read_bytes()

    # 5: another operation holds the database's lock for the whole run. The task retries
    # (2 + 10 + 30 s) before giving up, so this one runs while the other cases are checked.
    with lock.hold(locked, "test holding the lock"):
        busy = start_cli(
            prefect_api_url, tmp_path, "backup", "--db", "locked.db", "--backup-dir", "bk-locked"
        )
        try:
            assert_fails(cli("backup", "--db", "missing.db"), 3, "missing.db", "does not exist")
            assert_fails(
                cli("backup", "--db", "notsqlite.db", "--backup-dir", "bk-notsqlite"),
                3,
                "Not a SQLite database",
            )
            assert data_files(tmp_path / "bk-notsqlite") == []

            assert_fails(cli("verify", str(bad)), 4, bad.name, "checksum")
            proc = cli("verify", "--all", "--backup-dir", "bk", "--json")
            assert_fails(proc, 4, "1 of 3 backups failed verification", bad.name)
            report = json.loads(proc.stdout)
            assert report["valid"] is False
            outcomes = {Path(r["backup_path"]).name: r["valid"] for r in report["reports"]}
            assert outcomes == {
                Path(good1.backup_path).name: True,
                bad.name: False,
                Path(good2.backup_path).name: True,
            }

            # A nightly `verify --all` that finds nothing must not look green.
            assert_fails(cli("verify", "--all", "--backup-dir", "empty"), 3, "No backups found")

            assert_fails(cli("restore", str(bad)), 4, "refusing to restore")
            assert ledger.read_bytes() == live
            assert not list(tmp_path.glob("blockchain.db.pre_restore_*"))

            assert_fails(
                cli("backup", env={"BACKUP_INTERVAL_HOURS": "abc"}), 2, "BACKUP_INTERVAL_HOURS"
            )
            assert_fails(cli("backup", "--bogus"), 2, "unrecognized arguments: --bogus")
            assert_fails(
                cli("restore"), 2, "Name the backup to restore, or a point in time with --at"
            )
            assert_fails(cli("cleanup", "--keep", "0"), 2, "positive integer")
            assert_fails(cli("verify"), 2, "--all")
            assert_fails(cli(), 2, "required: COMMAND")
            unreachable = {"PREFECT_API_URL": f"http://127.0.0.1:{closed_port()}/api"}
            assert_fails(cli("backup", env=unreachable), 2, "Cannot reach the Prefect API")

            assert_fails(cli("backup", "--backup-dir", "a-file"), 6, "a-file")
            assert (tmp_path / "a-file").read_text() == "not a directory"
        except BaseException:
            busy.kill()
            raise
        finally:
            locked_out = finish(busy)
    assert_fails(
        locked_out, 5, "Another dagvault operation holds", "locked.db", "test holding the lock"
    )
    assert data_files(tmp_path / "bk-locked") == []


def test_two_backups_racing_on_one_database(
    cli: CliRunner, prefect_api_url: str, tmp_path: Path
) -> None:
    # Large enough (~100 MB) that the two backups' snapshots and checksums overlap.
    create_sample_ledger(tmp_path / "big.db", 20_000, seed=3, nodes=64)
    args = ("backup", "--db", "big.db", "--backup-dir", "race", "--no-quality", "--json")
    racers = [start_cli(prefect_api_url, tmp_path, *args) for _ in range(2)]
    results = [finish(p) for p in racers]

    succeeded = [r for r in results if r.returncode == 0]
    assert succeeded, [r.stderr for r in results]
    for r in results:
        if r.returncode != 0:
            assert_fails(r, 5, "Another dagvault operation")
    paths = [tmp_path / json.loads(r.stdout)["backup_path"] for r in succeeded]
    assert len(set(paths)) == len(paths)
    assert data_files(tmp_path / "race") == sorted(
        name for p in paths for name in (p.name, p.name + ".meta")
    )  # no temp file, no half-written backup
    listed = run_json(cli, "list", "--backup-dir", "race")
    assert sorted(tmp_path / e["backup_path"] for e in listed) == sorted(paths)
    assert all(e["verification"] == "verified" for e in listed)
    for path in paths:  # verified again here, independently of the runs' own verification
        report = verify_file(path)
        assert report.ok, report.problems
    source = content_digest(tmp_path / "big.db")
    assert all(content_digest(p) == source for p in paths)


def test_config_file_then_environment_then_flag(
    cli: CliRunner, ledger: Path, tmp_path: Path
) -> None:
    config = tmp_path / "dagvault.json"
    config.write_text(json.dumps({"backup": {"directory": "from-config"}}))
    from_env = {"BACKUP_DIR": "from-env"}

    def backup_dir_used(*args: str, env: dict[str, str] | None = None) -> Path:
        info = run_json(
            cli, "backup", "--config", str(config), "--no-verify", "--no-quality", *args, env=env
        )
        path = tmp_path / info["backup_path"]
        assert path.is_file()
        return path.parent

    assert backup_dir_used() == tmp_path / "from-config"
    assert backup_dir_used(env=from_env) == tmp_path / "from-env"
    assert backup_dir_used("--backup-dir", "from-flag", env=from_env) == tmp_path / "from-flag"
    for directory in ("from-config", "from-env", "from-flag"):
        assert len(list((tmp_path / directory).glob("*.db"))) == 1
    # The same precedence holds for the commands that run no flow.
    listed = run_json(cli, "list", "--config", str(config), env=from_env)
    assert [Path(e["backup_path"]).parent.name for e in listed] == ["from-env"]
