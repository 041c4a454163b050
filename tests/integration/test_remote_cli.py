"""Storage targets end to end: the real `dagvault` command and the Prefect flows against
moto's S3 server (the session's ``s3_endpoint``), credentials in AWS_* variables."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from _helpers import content_digest, sha3_file
from conftest import CliRunner

from dagvault.crypto import generate_key_file, load_key
from dagvault.errors import ConfigError, EncryptionKeyError
from dagvault.export.seal import decrypt_to
from dagvault.storage import open_store
from dagvault.storage.offsite.objects import list_target
from dagvault.storage.offsite.replicate import read_status
from flows.backup import backup_flow
from flows.export import export_flow
from flows.prune import prune_flow
from flows.replicate import replicate_flow
from flows.verify import verify_flow


def test_cli_backup_replicates_encrypted_and_restores_from_s3(
    cli: CliRunner, ledger: Path, s3_target: str, tmp_path: Path
) -> None:
    key = tmp_path / "backup.key"
    assert cli("keygen", str(key)).returncode == 0
    done = cli(
        "backup", "--db", str(ledger), "--backup-dir", str(tmp_path / "backups"),
        "--replicate-to", s3_target, "--encrypt", "--key-file", str(key), "--no-quality",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"replicated to {s3_target}" in done.stdout

    listed = cli("list", "--backup-dir", s3_target, "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["backup_path"].startswith(s3_target) and entry["backup_path"].endswith(".db.enc")

    no_key = cli("restore", entry["backup_path"], "--db", str(tmp_path / "a.db"))
    assert no_key.returncode == 2
    assert "Error: " in no_key.stderr and "needs the encryption key" in no_key.stderr
    assert "Try: " in no_key.stderr and not (tmp_path / "a.db").exists()

    restored = cli(
        "restore", entry["backup_path"], "--db", str(tmp_path / "b.db"), "--key-file", str(key)
    )
    assert restored.returncode == 0, restored.stderr
    assert content_digest(tmp_path / "b.db") == content_digest(ledger)


def test_flows_with_s3_as_backup_dir_verify_and_prune_there(
    prefect_api_url: str, ledger: Path, s3_target: str
) -> None:
    first = backup_flow(database_path=str(ledger), backup_dir=s3_target, quality=False)
    assert first["backup_path"].startswith(s3_target)
    backup_flow(database_path=str(ledger), backup_dir=s3_target, name="second", quality=False)
    reports = verify_flow(all_backups=True, backup_dir=s3_target)
    assert [r["valid"] for r in reports] == [True, True]
    result = prune_flow(keep_last=1, backup_dir=s3_target)
    assert result["removed_backups"] == 1
    [kept] = list_target(open_store(s3_target)).entries
    assert kept.info.verification.status == "verified"
    with pytest.raises(ConfigError, match="needs the parent backup"):
        backup_flow(database_path=str(ledger), backup_dir=s3_target, backup_type="incremental")


def test_replicate_flow_copies_to_two_targets_and_records_the_lag(
    prefect_api_url: str, ledger: Path, s3_target: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backup_flow(database_path=str(ledger), backup_dir=str(backups), quality=False)
    key = tmp_path / "k"
    generate_key_file(key)
    disk = (tmp_path / "disk2").as_uri()
    reports = replicate_flow(
        targets=[s3_target, disk],
        backup_dir=str(backups),
        encrypt=True,
        encryption_key_file=str(key),
    )
    assert [(r["target"], len(r["copied"]), r["lag_seconds"]) for r in reports] == [
        (s3_target, 1, 0),
        (disk, 1, 0),
    ]
    assert set(read_status(backups)) == {s3_target, disk}


def test_encrypted_export_from_a_backup_at_s3(
    prefect_api_url: str, ledger: Path, s3_target: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "k"
    generate_key_file(key_file)
    backups = tmp_path / "backups"
    backup_flow(  # tagged under the key: an export with a key authenticates its source
        database_path=str(ledger),
        backup_dir=str(backups),
        quality=False,
        encryption_key_file=str(key_file),
    )
    replicate_flow(
        targets=[s3_target],
        backup_dir=str(backups),
        encrypt=True,
        encryption_key_file=str(key_file),
    )
    [entry] = list_target(open_store(s3_target)).entries
    result = export_flow(
        fmt="sql",
        backup_path=entry.where,
        out=str(tmp_path / "dump.sql"),
        quality=False,
        encrypt=True,
        encryption_key_file=str(key_file),
    )
    assert result["encrypted"] and not (tmp_path / "dump.sql").exists()
    manifest = json.loads(Path(result["manifest_path"]).read_text())
    assert manifest["source"]["path"] == entry.where
    sealed = tmp_path / "dump.sql.enc"
    assert manifest["encryption"]["files"]["dump.sql"]["sha3_256"] == sha3_file(sealed)

    with pytest.raises(EncryptionKeyError):
        decrypt_to(sealed, tmp_path / "plain.sql", os.urandom(32))
    assert not (tmp_path / "plain.sql").exists()
    decrypt_to(sealed, tmp_path / "plain.sql", load_key(key_file))
    assert sha3_file(tmp_path / "plain.sql") == manifest["file"]["sha3_256"]
    restored = tmp_path / "from-dump.db"
    with sqlite3.connect(restored) as conn:
        conn.executescript((tmp_path / "plain.sql").read_text())
    assert content_digest(restored) == content_digest(ledger)
