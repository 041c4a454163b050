"""Issue #20's forged backup, played as written: copy a backup, change amounts, add a
trigger, recompute ``checksum``, ``file_size`` and ``meta_checksum`` with the public
algorithm. With a key, verify and restore refuse it (a wrong or a deleted tag, any link
of a chain); without one, the schema guard refuses the trigger unless the operator
overrides it, which is audit-logged. Genuine backups of every sidecar format restore."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    add_odd_transactions,
    content_digest,
    legacy_sidecar,
    query,
    read_meta_json,
    sha3_file,
    write_meta_json,
    write_odd_ledger_config,
)

from dagvault import pages
from dagvault.authtag import UNAUTHENTICATED, problem
from dagvault.backup import create_backup
from dagvault.crypto import generate_key_file, load_key
from dagvault.delta import apply_delta
from dagvault.errors import VerificationError
from dagvault.meta import BackupInfo, Verification, read_meta
from dagvault.restore import restore_backup
from dagvault.schema_guard import AUDIT_LOG_NAME, changes, read_schema
from dagvault.verify import verify_file
from tests._api import Server, api_server

# The odd ledger's names for the issue's `nodes` and `transactions`.
EVIL = "CREATE TRIGGER evil AFTER INSERT ON validators BEGIN DELETE FROM tx_log; END"
CliRunner = Any


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    return path


def reseal(path: Path, document: dict[str, Any]) -> None:
    """What any forger can do: point the sidecar at ``path``'s bytes and recompute the
    unkeyed meta_checksum."""
    document.update(checksum=sha3_file(path), file_size=path.stat().st_size, backup_path=str(path))
    write_meta_json(path, document)


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
    for delta in chain[1:]:
        apply_delta(delta, image)
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


# Legacy sidecars ----------------------------------------------------------------------


def as_format(backup: Path, version: int) -> None:
    """Rewrite a genuine sidecar as dagvault wrote it in format ``version`` (1 or 2)."""
    document = read_meta_json(backup)
    document.pop("auth_tag", None)
    backup.with_name(backup.name + ".meta").write_text(
        json.dumps(legacy_sidecar(document, version))
    )


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
