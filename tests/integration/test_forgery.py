"""Issue #20's forged backup, played as written: copy a backup, change amounts, add a
trigger, recompute ``checksum``, ``file_size`` and ``meta_checksum`` with the public
algorithm. With a key, verify and restore refuse it (a wrong or a deleted tag, any link
of a chain); without one, the schema guard refuses the trigger unless the operator
overrides it, which is audit-logged. Genuine backups of every sidecar format restore.

Integration half; the tests that need no server or child process are in
tests/unit/test_forgery.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    add_odd_transactions,
    content_digest,
    query,
    read_meta_json,
    write_odd_ledger_config,
)
from _shared.forgery import as_format, reseal

from dagvault.backup import create_backup
from dagvault.crypto import load_key
from dagvault.errors import VerificationError
from dagvault.meta import read_meta
from dagvault.restore import restore_backup
from dagvault.schema_guard import AUDIT_LOG_NAME
from dagvault.verify import verify_file
from tests._api import Server, api_server

# The odd ledger's names for the issue's `nodes` and `transactions`.
EVIL = "CREATE TRIGGER evil AFTER INSERT ON validators BEGIN DELETE FROM tx_log; END"
CliRunner = Any


def forge(backup: Path, name: str, *, keep_tag: bool = True, trigger: bool = True) -> Path:
    """The attack: a copy of ``backup`` with higher amounts (and the trigger)."""
    forged = backup.with_name(name)
    shutil.copyfile(backup, forged)
    with closing(sqlite3.connect(forged, isolation_level=None)) as conn:
        conn.execute("UPDATE tx_log SET value = value * 1000 WHERE value < 1000000000")
        if trigger:
            conn.execute(EVIL)
    document = read_meta_json(backup)
    if not keep_tag:
        document.pop("auth_tag", None)
    reseal(forged, document)
    return forged


def has_evil(db: Path) -> bool:
    return bool(query(db, "SELECT 1 FROM sqlite_schema WHERE name = 'evil'"))


def refused(result: Any, *needles: str) -> None:
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Error: " in result.stderr and "Try: " in result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


# With a key ---------------------------------------------------------------------------


def test_cli_refuses_a_forged_backup_when_a_key_is_configured(
    cli: CliRunner, odd_ledger: Path, key_file: Path, tmp_path: Path
) -> None:
    config = write_odd_ledger_config(tmp_path)
    backups = tmp_path / "backups"
    base = ("--config", str(config), "--key-file", str(key_file))
    made = cli("backup", "--db", str(odd_ledger), "--backup-dir", str(backups), "--no-quality",
               "--json", *base)  # fmt: skip
    assert made.returncode == 0, made.stderr
    genuine = Path(json.loads(made.stdout)["backup_path"])
    assert read_meta_json(genuine)["auth_tag"]["algorithm"] == "hmac-sha3-256-v1"
    assert cli("verify", str(genuine), *base).returncode == 0
    live = content_digest(odd_ledger)

    forged = forge(genuine, "node-ledger_1999999999.db")
    assert verify_file(forged).ok  # the unkeyed checks cannot tell: that is the attack
    refused(cli("verify", str(forged), *base), "authentication tag does not match")
    restore = cli("restore", str(forged), "--db", str(odd_ledger), *base)
    refused(restore, "authentication tag does not match")

    stripped = forge(genuine, "node-ledger_1999999998.db", keep_tag=False)
    restore = cli("restore", str(stripped), "--db", str(odd_ledger), *base)
    refused(restore, "carries no authentication tag", "--sign-legacy")

    assert content_digest(odd_ledger) == live and not has_evil(odd_ledger)

    back = cli("restore", str(genuine), "--db", str(tmp_path / "new.db"), *base)
    assert back.returncode == 0, back.stderr
    assert "not authenticated" not in back.stdout
    assert content_digest(tmp_path / "new.db") == content_digest(genuine)


def test_a_legacy_chain_is_refused_with_a_key_until_signed(
    cli: CliRunner, odd_ledger: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    backups = odd_ledger.parent / "backups"
    full = Path(create_backup(odd_ledger, backups).backup_path)
    add_odd_transactions(odd_ledger, 10)
    delta = Path(create_backup(odd_ledger, backups, kind="incremental").backup_path)
    for link in (full, delta):
        as_format(link, 2)
    target = odd_ledger.parent / "restored.db"
    with pytest.raises(VerificationError, match="carries no authentication tag") as caught:
        restore_backup(delta, target, key=key)
    assert "--sign-legacy" in caught.value.hint and not target.exists()

    signed = cli("verify", "--sign-legacy", str(delta), "--key-file", str(key_file))
    assert signed.returncode == 0, signed.stderr
    assert f"signed {full}" in signed.stdout and f"signed {delta}" in signed.stdout
    assert read_meta(delta).format_version == 3
    result = restore_backup(delta, target, key=key)
    assert result.success and content_digest(target) == content_digest(odd_ledger)


# Without a key: the schema guard ------------------------------------------------------


def test_without_a_key_the_added_trigger_is_refused_unless_allowed_and_audited(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path
) -> None:
    config = write_odd_ledger_config(tmp_path)
    genuine = Path(create_backup(odd_ledger, tmp_path / "backups").backup_path)
    forged = forge(genuine, "node-ledger_1999999999.db")
    live = content_digest(odd_ledger)

    restore = cli("restore", str(forged), "--db", str(odd_ledger), "--config", str(config))
    refused(restore, "adds trigger 'evil'", "--allow-schema-change")
    assert content_digest(odd_ledger) == live and not has_evil(odd_ledger)
    assert not (tmp_path / AUDIT_LOG_NAME).exists()

    allowed = cli("restore", str(forged), "--db", str(odd_ledger), "--config", str(config),
                  "--allow-schema-change")  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert "schema changes allowed" in allowed.stdout and "not authenticated" in allowed.stdout
    assert has_evil(odd_ledger)
    (line,) = (tmp_path / AUDIT_LOG_NAME).read_text().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "schema_change_allowed" and entry["backup"] == str(forged)
    assert entry["database"] == str(odd_ledger) and "adds trigger 'evil'" in entry["changes"][0]


# The HTTP API -------------------------------------------------------------------------


@pytest.fixture
def server(prefect_api_url: str, tmp_path: Path) -> Iterator[Server]:
    from dagvault.sample import create_sample_ledger

    create_sample_ledger(tmp_path / "blockchain.db", 300, seed=5, nodes=8)
    with api_server(tmp_path, prefect_api_url) as running:
        yield running


def test_api_refuses_the_issue_trigger_unless_allow_schema_change(server: Server) -> None:
    live = server.workdir / "blockchain.db"
    genuine = Path(create_backup(live, server.workdir / "backups").backup_path)
    forged = genuine.with_name("blockchain_1999999999.db")
    shutil.copyfile(genuine, forged)
    with closing(sqlite3.connect(forged, isolation_level=None)) as conn:
        conn.execute("UPDATE transactions SET amount = amount * 1000")
        conn.execute(
            "CREATE TRIGGER evil AFTER INSERT ON nodes BEGIN DELETE FROM transactions; END"
        )
    reseal(forged, read_meta_json(genuine))
    before = content_digest(live)
    body = {"backup_path": f"./backups/{forged.name}"}
    with server.client() as http:
        refusal = http.post("/backup/restore", json=body)
        assert refusal.status_code == 422, refusal.text
        assert "adds trigger 'evil'" in refusal.json()["error"]
        assert content_digest(live) == before
        allowed = http.post("/backup/restore", json={**body, "allow_schema_change": True})
        assert allowed.status_code == 200, allowed.text
    assert allowed.json()["data"]["allow_schema_change"] is True
    assert has_evil(live)
    lines = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    restores = [e for e in lines if e["action"] == "restore"]
    assert [e["request"]["allow_schema_change"] for e in restores] == [False, True]
    assert [e["result"] for e in restores] == ["failure", "success"]
    (override,) = (server.workdir / AUDIT_LOG_NAME).read_text().splitlines()
    assert "adds trigger 'evil'" in json.loads(override)["changes"][0]
