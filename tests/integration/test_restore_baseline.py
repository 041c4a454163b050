"""The quality gate after a restore or import: the restored state is the next backups'
baseline, a decrease no restore explains still fails, every refusal names the override of
the interface that shows it, and cleanup never lets a refused backup displace a good one.

Real odd ledgers (its own table names, through ``--config``), the real CLI and API against
the session's Prefect server, real GX gates.

Integration half; the tests that need no server or child process are in
tests/unit/test_restore_baseline.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.export import export_database
from dagvault.ledger import LedgerProfile
from dagvault.meta import read_meta
from tests._api import api_server
from tests._helpers import (
    ODD_LEDGER_CONFIG,
    add_odd_transactions,
    content_digest,
    make_odd_ledger,
    write_odd_ledger_config,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)


def drop_newest(db: Path, count: int) -> None:
    """Data loss no restore explains: rows deleted behind dagvault's back."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        newest = f"SELECT tx_id FROM tx_log ORDER BY tx_id DESC LIMIT {count}"
        conn.execute(f"DELETE FROM tx_edges WHERE child IN ({newest}) OR parent IN ({newest})")
        conn.execute(f"DELETE FROM tx_log WHERE tx_id IN ({newest})")


def newest_backup(directory: Path) -> Path:
    return list_backups(directory)[0].path


def earlier_backup(db: Path, directory: Path) -> Path:
    """A backup taken before the scenario starts, by the core: what a test checks is the
    CLI runs after it (a `dagvault backup` subprocess with its gate costs seconds)."""
    profile = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
    return Path(create_backup(db, directory, profile=profile).backup_path)


# --------------------------------------------------------------------------- CLI


def test_cli_backup_after_restoring_an_older_backup_passes_and_an_unexplained_drop_fails(
    cli: Callable[..., Any], odd_ledger: Path, tmp_path: Path
) -> None:
    config = str(write_odd_ledger_config(tmp_path))
    backups = tmp_path / "backups"

    def backup(*extra: str, env: dict[str, str] | None = None) -> Any:
        return cli("backup", "--config", config, "--db", str(odd_ledger), "--backup-dir",
                   str(backups), *extra, env=env)  # fmt: skip

    first = earlier_backup(odd_ledger, backups)
    add_odd_transactions(odd_ledger, 15)
    second = earlier_backup(odd_ledger, backups)

    restored = cli("restore", str(first), "--config", config, "--db", str(odd_ledger))
    assert restored.returncode == 0, restored.stderr
    assert "warning: the ledger went back 15 transactions (215 before, 200 now)" in (
        restored.stdout
    )
    assert "⚠️  Ledger went back 15 transactions" in restored.stdout + restored.stderr

    # The description's next backup: before, exit 4 (transactions_not_decreased) forever.
    after = backup()
    assert after.returncode == 0, after.stderr
    assert "quality gate: passed" in after.stdout
    assert f"baseline: restored from backup {first}" in after.stdout
    third = newest_backup(backups)
    assert read_meta(third).verification.status == "verified"

    # Rows deleted with sqlite3: no restore explains that, so the gate still refuses it and
    # the CLI's Try: names the CLI flag.
    drop_newest(odd_ledger, 5)
    lost = backup()
    assert lost.returncode == 4, lost.stdout + lost.stderr
    assert "Error: Data-quality gate failed" in lost.stderr
    assert "transactions_not_decreased (tx_log): observed 195" in lost.stderr
    assert "Try:" in lost.stderr and "`dagvault backup --allow-decrease`" in lost.stderr
    assert "DAGVAULT_ALLOW_DECREASE" not in lost.stderr.split("Try:")[-1]
    assert "Traceback" not in lost.stderr
    fourth = newest_backup(backups)
    assert backup().returncode == 4  # still below the baseline: failed again
    fifth = newest_backup(backups)

    # A gate-failed backup is refused by restore, naming the flag that overrides it.
    before = content_digest(odd_ledger)
    refused = cli("restore", str(fifth), "--config", config, "--db", str(odd_ledger))
    assert refused.returncode == 4, refused.stderr
    assert "refusing to restore it" in refused.stderr
    assert "`dagvault restore --allow-gate-failed BACKUP`" in refused.stderr
    assert content_digest(odd_ledger) == before
    scratch = tmp_path / "scratch.db"
    allowed = cli(
        "restore", str(fifth), "--allow-gate-failed", "--config", config, "--db", str(scratch)
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "restored anyway (allow_gate_failed)" in allowed.stdout

    # cleanup --keep 2: the two failed backups do not push the two good ones out.
    cleaned = cli("cleanup", "--keep", "2", "--backup-dir", str(backups), "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert [e.path for e in list_backups(backups)] == [fifth, fourth, third, second]
    assert not first.exists()

    # The environment variable overrides where no flag is given (deployments, schedule).
    accepted = backup(env={"DAGVAULT_ALLOW_DECREASE": "true"})
    assert accepted.returncode == 0, accepted.stderr
    assert "decreased from 200" in accepted.stdout


def test_cli_import_of_an_older_dump_moves_the_baseline(
    cli: Callable[..., Any], odd_ledger: Path, tmp_path: Path
) -> None:
    config = str(write_odd_ledger_config(tmp_path))
    db, backups = ["--db", str(odd_ledger)], ["--backup-dir", str(tmp_path / "backups")]
    earlier_backup(odd_ledger, tmp_path / "backups")
    dump = tmp_path / "older.sql"
    export_database("sql", database=odd_ledger, out=dump)
    add_odd_transactions(odd_ledger, 12)
    earlier_backup(odd_ledger, tmp_path / "backups")

    imported = cli("import-sql", str(dump), "--config", config, *db)
    assert imported.returncode == 0, imported.stderr
    assert "warning: the ledger went back 12 transactions (212 before, 200 now)" in (
        imported.stdout
    )
    after = cli("backup", "--config", config, *db, *backups)
    assert after.returncode == 0, after.stderr
    assert f"baseline: restored from SQL dump {dump}" in after.stdout


# --------------------------------------------------------------------------- HTTP API


def test_api_backup_after_restore_answers_200_and_hints_name_the_request_fields(
    prefect_api_url: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "srv"
    workdir.mkdir()
    ledger = make_odd_ledger(workdir / "blockchain.db")
    config = write_odd_ledger_config(workdir)
    body = {"backup_path": "./backups/blockchain", "description": "Weekly backup"}
    extra = {"DAGVAULT_CONFIG": str(config)}
    with api_server(workdir, prefect_api_url, extra_env=extra) as server, server.client() as api:

        def post(path: str, payload: dict[str, Any]) -> httpx.Response:
            return api.post(path, json=payload)

        first = post("/backup", body)
        assert first.status_code == 200, first.json()
        older = first.json()["data"]["backup_path"]
        add_odd_transactions(ledger, 10)
        assert post("/backup", body).status_code == 200

        restored = post("/backup/restore", {"backup_path": older})
        assert restored.status_code == 200, restored.json()
        result = restored.json()["data"]["result"]
        assert result["transactions_went_back"] == 10
        assert any("went back 10 transactions" in w for w in result["warnings"])

        again = post("/backup", body)  # the description's exact request: was 422
        assert again.status_code == 200, again.json()

        drop_newest(ledger, 3)
        refused = post("/backup", body)
        assert refused.status_code == 422
        answer = refused.json()
        assert "transactions_not_decreased" in answer["error"]
        assert '`"allow_decrease": true` in the body of POST /backup' in answer["hint"]
        assert "--allow-decrease" not in answer["hint"]
        failed = str(Path("backups") / newest_backup(workdir / "backups").name)

        refusal = post("/backup/restore", {"backup_path": failed})
        assert refusal.status_code == 422
        assert '`"allow_gate_failed": true`' in refusal.json()["hint"]
        allowed = post("/backup/restore", {"backup_path": failed, "allow_gate_failed": True})
        assert allowed.status_code == 200, allowed.json()
        assert allowed.json()["data"]["allow_gate_failed"] is True

    audit = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    restores = [a for a in audit if a["action"] == "restore"]
    assert [(a["request"]["allow_gate_failed"], a["status"]) for a in restores] == [
        (False, 200),
        (False, 422),
        (True, 200),
    ]


# --------------------------------------------------------------------------- Prefect flow


@pytest.mark.usefixtures("prefect_api_url")
def test_a_failed_flow_run_names_the_flow_parameter_and_the_setting(tmp_path: Path) -> None:
    from flows.backup import backup_flow

    db = make_odd_ledger(tmp_path / "node.db", 30, blob_size=100)
    kwargs = {
        "database_path": str(db),
        "backup_dir": str(tmp_path / "backups"),
        "config_file": str(write_odd_ledger_config(tmp_path)),
        "return_state": True,
    }
    assert backup_flow(**kwargs).is_completed()
    drop_newest(db, 2)
    state = backup_flow(**kwargs)
    assert state.is_failed()
    assert "transactions_not_decreased" in (state.message or "")
    assert "allow_decrease=true" in (state.message or "")
    assert "DAGVAULT_ALLOW_DECREASE=true / quality.allow_decrease" in (state.message or "")
