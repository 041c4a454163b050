"""Issue #20's forged backup, played as written: copy a backup, change amounts, add a
trigger, recompute ``checksum``, ``file_size`` and ``meta_checksum`` with the public
algorithm. With a key, verify and restore refuse it (a wrong or a deleted tag, any link
of a chain); without one, the schema guard refuses the trigger unless the operator
overrides it, which is audit-logged. Genuine backups of every sidecar format restore.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_forgery.py."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    add_odd_transactions,
    content_digest,
    read_meta_json,
    sha3_file,
    write_meta_json,
)
from _shared.forgery import as_format, reseal

from dagvault import pages
from dagvault.authtag import UNAUTHENTICATED, problem
from dagvault.backup import create_backup
from dagvault.crypto import load_key
from dagvault.delta import apply_deltas
from dagvault.errors import VerificationError
from dagvault.meta import BackupInfo, Verification, read_meta
from dagvault.restore import restore_backup
from dagvault.schema_guard import changes, read_schema
from dagvault.verify import verify_file


def test_every_link_of_a_chain_is_authenticated(odd_ledger: Path, key_file: Path) -> None:
    key = load_key(key_file)
    backups = odd_ledger.parent / "backups"
    full = Path(create_backup(odd_ledger, backups, key=key).backup_path)
    add_odd_transactions(odd_ledger, 20)
    first = Path(create_backup(odd_ledger, backups, kind="incremental", key=key).backup_path)
    add_odd_transactions(odd_ledger, 20)
    info = create_backup(odd_ledger, backups, kind="incremental", key=key)
    last = Path(info.backup_path)
    assert info.backup_type == "Incremental" and info.metadata["parent"] == first.name
    assert verify_file(last, key=key).ok

    # Forge the full backup in place, then make the chain agree with it again: the
    # child's parent_checksum and the last link's image_digest, both public digests.
    forge_in_place(full)
    child = read_meta_json(first)
    child["metadata"]["parent_checksum"] = sha3_file(full)
    write_meta_json(first, child)
    tip = read_meta_json(last)
    tip["metadata"]["image_digest"] = image_digest_of([full, first, last], info)
    write_meta_json(last, tip)

    assert verify_file(last).ok  # without the key the forged chain passes every check
    report = verify_file(last, key=key)  # the tip's sidecar was resealed too
    assert not report.ok and "authentication tag does not match" in str(report.problems)
    target = odd_ledger.parent / "restored.db"
    with pytest.raises(VerificationError, match="authentication tag does not match"):
        restore_backup(last, target, key=key)
    with pytest.raises(VerificationError, match="authentication tag does not match"):
        restore_backup(last, target, key=key, verify=False)  # --no-verify still authenticates
    assert not target.exists()


def test_a_forged_middle_sidecar_is_caught_even_when_the_tip_is_genuine(
    odd_ledger: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    backups = odd_ledger.parent / "backups"
    create_backup(odd_ledger, backups, key=key)
    add_odd_transactions(odd_ledger, 10)
    middle = Path(create_backup(odd_ledger, backups, kind="incremental", key=key).backup_path)
    add_odd_transactions(odd_ledger, 10)
    tip = Path(create_backup(odd_ledger, backups, kind="incremental", key=key).backup_path)
    document = read_meta_json(middle)
    document["metadata"]["description"] = "edited"
    write_meta_json(middle, document)
    report = verify_file(tip, key=key)
    assert not report.ok and "chain" in report.checks
    assert f"{middle.name}: authentication tag does not match" in report.checks["chain"]


def forge_in_place(backup: Path) -> None:
    with closing(sqlite3.connect(backup, isolation_level=None)) as conn:
        conn.execute("UPDATE tx_log SET value = value + 1 WHERE tx_id <= 5")
    reseal(backup, read_meta_json(backup))


def image_digest_of(chain: list[Path], info: BackupInfo) -> str:
    image = chain[-1].with_name("forger-image.db")
    shutil.copyfile(chain[0], image)
    apply_deltas(chain[1:], image)
    page_size = int(info.metadata["page_size"])
    digest = pages.image_digest(pages.page_digests(image, page_size))
    image.unlink()
    return digest


def test_a_restore_with_a_key_tags_its_pre_restore_backup(odd_ledger: Path, key_file: Path) -> None:
    key = load_key(key_file)
    backup = Path(create_backup(odd_ledger, odd_ledger.parent / "backups", key=key).backup_path)
    result = restore_backup(backup, odd_ledger, key=key)
    assert UNAUTHENTICATED not in result.warnings
    assert result.pre_restore_backup is not None
    assert verify_file(Path(result.pre_restore_backup), key=key).ok  # can be restored back


@pytest.mark.parametrize("version", [1, 2, 3])
def test_genuine_backups_of_every_format_restore_with_a_warning_without_a_key(
    odd_ledger: Path, version: int
) -> None:
    backup = Path(create_backup(odd_ledger, odd_ledger.parent / "backups").backup_path)
    if version < 3:
        as_format(backup, version)
    assert read_meta_json(backup)["format_version"] == version
    read_meta(backup)  # reads
    target = odd_ledger.parent / "restored.db"
    result = restore_backup(backup, target)
    assert result.success and UNAUTHENTICATED in result.warnings
    assert content_digest(target) == content_digest(odd_ledger)


def schema_of(tmp_path: Path, name: str, *statements: str) -> dict[Any, Any]:
    path = tmp_path / name
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)
    return read_schema(path, "database")


def test_the_guard_refuses_code_and_dropped_tables_and_lets_migrations_pass(
    tmp_path: Path,
) -> None:
    base = (
        "CREATE TABLE t (a INTEGER)",
        "CREATE TABLE gone (a INTEGER)",
        "CREATE VIEW v AS SELECT a FROM t",
        "CREATE TRIGGER kept AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE TRIGGER guard AFTER DELETE ON t BEGIN SELECT 1; END",
    )
    live = schema_of(tmp_path, "live.db", *base)
    backup = schema_of(
        tmp_path,
        "backup.db",
        "CREATE TABLE t (a INTEGER, b TEXT)",  # changed table: a migration, allowed
        "CREATE TABLE extra (a INTEGER)",  # added table: allowed
        "CREATE INDEX t_a ON t(a)",  # added index: allowed
        "CREATE VIEW v AS SELECT a, b FROM t",  # changed view: refused
        "CREATE TRIGGER   kept AFTER INSERT ON t\n BEGIN SELECT 1; END",  # whitespace only
        "CREATE TRIGGER evil AFTER INSERT ON t BEGIN DELETE FROM t; END",  # added: refused
    )
    assert changes(backup, live) == [
        "adds trigger 'evil': CREATE TRIGGER evil AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "changes view 'v' to: CREATE VIEW v AS SELECT a, b FROM t",
        "drops table 'gone'",
        "drops trigger 'guard'",
    ]
    assert changes(live, live) == []


def test_a_restore_into_a_new_database_has_no_schema_to_compare(odd_ledger: Path) -> None:
    backup = Path(create_backup(odd_ledger, odd_ledger.parent / "backups").backup_path)
    result = restore_backup(backup, odd_ledger.parent / "fresh.db")
    assert "the live database is new or empty; there is no schema to compare" in result.warnings


def test_the_tag_binds_the_name_and_fields_but_not_the_directory_or_verdicts(
    odd_ledger: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    info = create_backup(odd_ledger, odd_ledger.parent / "backups", key=key)
    moved = replace(info, backup_path=f"/elsewhere/{Path(info.backup_path).name}")
    assert problem(moved, key) is None  # a moved directory, a copy fetched from a target
    assert problem(info.with_verification(Verification("verified")), key) is None
    assert problem(info, bytes(32)) is not None and "another key" in str(problem(info, bytes(32)))
    for forged in (
        replace(info, backup_path=str(Path(info.backup_path).with_name("other_1.db"))),
        replace(info, total_transactions=info.total_transactions + 1),
        replace(info, metadata={**info.metadata, "description": "edited"}),
        replace(info, auth_tag={**(info.auth_tag or {}), "tag": "подпись"}),  # no traceback
    ):
        assert "authentication tag does not match" in str(problem(forged, key))
