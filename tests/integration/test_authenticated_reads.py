"""Issue #20 leftovers: with a key configured, every way a backup is read or made is
authenticated like verify and restore: `export --from BACKUP` checks the backup's tag,
import-sql's pre-import backup carries one, and a copy at a storage target written before
the key's tags (format 2, encrypted) is admitted once with `verify --sign-legacy URL`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import content_digest, legacy_sidecar, write_odd_ledger_config
from conftest import CliRunner

from dagvault.backup import create_backup
from dagvault.crypto import generate_key_file, load_key
from dagvault.errors import VerificationError
from dagvault.export.run import export_database
from dagvault.importer import import_sql
from dagvault.meta import read_meta
from dagvault.storage import open_store
from dagvault.storage.offsite.objects import upload_backup
from dagvault.storage.offsite.operations import restore_from_target
from dagvault.verify import verify_file


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    return path


def _other_key(tmp_path: Path) -> bytes:
    other = tmp_path / "other.key"
    generate_key_file(other)
    key = load_key(other)
    assert key is not None
    return key


def test_export_from_a_backup_checks_its_tag_with_a_key(
    odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    backups, exports = tmp_path / "backups", tmp_path / "exports"
    tagged = Path(create_backup(odd_ledger, backups, key=key).backup_path)
    untagged = Path(create_backup(odd_ledger, backups).backup_path)  # before the key, say

    for backup, key_used, problem in [
        (untagged, key, "carries no authentication tag"),
        (tagged, _other_key(tmp_path), "made with another key"),
    ]:
        with pytest.raises(VerificationError, match="refusing to export it") as caught:
            export_database("jsonl", backup=backup, export_dir=exports, key=key_used)
        assert problem in caught.value.message
        assert "--sign-legacy" in caught.value.hint
        assert not exports.exists() or not any(exports.iterdir())  # nothing written

    result = export_database("jsonl", backup=tagged, export_dir=exports, key=key)
    assert result.success and sum(result.row_counts.values()) > 0
    # Without a key an untagged backup still exports (its checksums prove it is intact).
    assert export_database("jsonl", backup=untagged, export_dir=exports).success


def test_cli_export_from_an_untagged_backup_is_refused_with_a_key(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    untagged = Path(create_backup(odd_ledger, tmp_path / "backups").backup_path)
    config = write_odd_ledger_config(tmp_path)
    refused = cli(
        "export", "--config", str(config), "--from", str(untagged), "--format", "csv",
        "--export-dir", str(tmp_path / "exports"), "--key-file", str(key_file),
    )  # fmt: skip
    assert refused.returncode == 4, refused.stderr
    assert "carries no authentication tag" in refused.stderr
    assert "--sign-legacy" in refused.stderr and "Traceback" not in refused.stderr


def test_the_pre_import_backup_carries_a_tag(
    odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    dump = export_database("sql", database=odd_ledger, export_dir=tmp_path / "exports")
    before = content_digest(odd_ledger)
    result = import_sql(Path(dump.export_path), odd_ledger, key=key)
    assert result.pre_import_backup is not None
    copy = Path(result.pre_import_backup)
    assert read_meta(copy).auth_tag is not None
    assert verify_file(copy, key=key).ok  # so it restores under the key
    assert content_digest(copy) == before


def test_cli_import_sql_tags_its_pre_import_backup_with_the_configured_key(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    dump = export_database("sql", database=odd_ledger, export_dir=tmp_path / "exports")
    config = write_odd_ledger_config(tmp_path)
    done = cli(
        "import-sql", "--config", str(config), "--db", str(odd_ledger), dump.export_path,
        env={"DAGVAULT_ENCRYPTION_KEY_FILE": str(key_file)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    copies = sorted(odd_ledger.parent.glob(odd_ledger.name + ".pre_restore_*[0-9]"))
    assert copies and verify_file(copies[-1], key=load_key(key_file)).ok


def test_a_format_2_encrypted_copy_at_a_target_is_admitted_once_with_sign_legacy(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    key = load_key(key_file)
    backup = Path(create_backup(odd_ledger, tmp_path / "backups").backup_path)
    target = tmp_path / "offsite"
    upload_backup(backup, read_meta(backup), open_store(target.as_uri()), key)
    # The sidecar at the target as a format-2 dagvault wrote it: encrypted, no tag.
    sidecar = target / (backup.name + ".enc.meta")
    document = json.loads(sidecar.read_text())
    document.pop("auth_tag", None)
    sidecar.write_text(json.dumps(legacy_sidecar(document, 2)))
    location = f"{target.as_uri()}/{backup.name}"
    restored = tmp_path / "restored.db"

    with pytest.raises(VerificationError, match="carries no authentication tag") as caught:
        restore_from_target(open_store(target.as_uri()), backup.name, restored, key)
    assert "--sign-legacy" in caught.value.hint and not restored.exists()

    signed = cli("verify", "--sign-legacy", location, "--key-file", str(key_file))
    assert signed.returncode == 0, signed.stderr
    assert f"signed {target.as_uri()}/{backup.name}.enc" in signed.stdout
    assert json.loads(sidecar.read_text())["format_version"] == 3

    result = restore_from_target(open_store(target.as_uri()), backup.name, restored, key)
    assert result.success and content_digest(restored) == content_digest(odd_ledger)
    exported = cli(
        "export", "--config", str(write_odd_ledger_config(tmp_path)), "--from", location,
        "--format", "csv", "--export-dir", str(tmp_path / "exports"),
        "--key-file", str(key_file),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
