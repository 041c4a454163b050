"""What a command prints: its result and dagvault's event lines; Prefect's per-run log lines
only with -v (the run history keeps them either way)."""

from __future__ import annotations

from pathlib import Path

from conftest import CliRunner


def test_prefect_run_lines_only_with_verbose(cli: CliRunner, ledger: Path) -> None:
    env = {"PREFECT_LOGGING_LEVEL": "INFO"}  # what a user's default Prefect logging shows
    quiet = cli("backup", "--db", ledger.name, "--no-quality", env=env, cwd=ledger.parent)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.startswith("📦 Database backup created: backups/"), quiet.stderr
    for noise in ("Flow run", "Task run", "Finished in state", "INFO"):
        assert noise not in quiet.stderr, quiet.stderr
    assert "backup created" in quiet.stdout and "SHA3-256" in quiet.stdout

    verbose = cli("backup", "--db", ledger.name, "--no-quality", "-v", env=env, cwd=ledger.parent)
    assert verbose.returncode == 0, verbose.stderr
    assert "Finished in state Completed" in verbose.stderr
    assert verbose.stderr.count("📦 Database backup created") == 1  # once, not twice


def test_a_failed_run_prints_its_error_once_without_prefect_run_lines(
    cli: CliRunner, ledger: Path
) -> None:
    """A flow run that fails (a truncated ledger file) prints the description's ❌ line,
    Error: and Try:, not Prefect's "Task run … Finished in state Failed" and "Flow run …
    Encountered exception" lines repeating them."""
    damaged = ledger.with_name("damaged.db")
    damaged.write_bytes(ledger.read_bytes()[:65536])
    failed = cli("backup", "--db", damaged.name, "--no-quality", cwd=ledger.parent)
    assert failed.returncode != 0, failed.stderr
    assert "❌ Backup creation failed" in failed.stderr, failed.stderr
    assert "Error: Database disk image is malformed" in failed.stderr, failed.stderr
    assert "\nTry: " in failed.stderr, failed.stderr
    for noise in ("Flow run", "Task run", "Finished in state", "Traceback"):
        assert noise not in failed.stderr, failed.stderr
