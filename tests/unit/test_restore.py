"""restore_backup on real SQLite files: live targets, new files, options, page sizes.

Every database is a real file in tmp_path; "another process" is a real child Python
process holding its own SQLite connection, driven line by line over pipes.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_restore.py."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from _helpers import content_digest as digest_of
from _helpers import scalar
from _shared.restore import _ledger_with_page_size, backup_of, modify_ledger

from dagvault.authtag import UNAUTHENTICATED
from dagvault.errors import ConfigError
from dagvault.meta import read_meta
from dagvault.restore import RestoreResult, restore_backup
from dagvault.verify import verify_file


def pre_restore_files(db: Path) -> list[Path]:
    """Pre-restore data files (and any temp or sidecar file of one) beside ``db``."""
    return sorted(path for path in db.parent.iterdir() if f"{db.name}.pre_restore_" in path.name)


# 1 ------------------------------------------------------------------------------------


def test_restore_over_modified_live_database(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backup, info, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)
    modified = digest_of(ledger)
    assert modified != at_backup and set(modified) - set(at_backup) == {"scratch"}

    caplog.set_level(logging.INFO, logger="dagvault")
    logger = logging.getLogger("dagvault")
    logger.addHandler(caplog.handler)  # also captured if something turned propagation off
    try:
        started = int(time.time())
        result = restore_backup(backup, ledger, allow_schema_change=True)
        finished = int(time.time())
    finally:
        logger.removeHandler(caplog.handler)

    assert digest_of(ledger) == at_backup
    assert scalar(ledger, "PRAGMA integrity_check") == "ok"
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"  # the live database stays WAL

    assert isinstance(result, RestoreResult)
    assert result.success is True
    assert result.backup_info.checksum == info.checksum
    assert result.backup_info.backup_path == str(backup)
    assert result.backup_info.row_counts == info.row_counts
    assert result.backup_info.verified  # verified before the restore, recorded in .meta
    assert started <= result.restore_timestamp <= finished
    unauthenticated, dropped = result.warnings  # no key; the override is audit-logged
    assert unauthenticated == UNAUTHENTICATED and "drops table 'scratch'" in dropped
    assert result.database_path == str(ledger)

    assert result.pre_restore_backup is not None
    pre = Path(result.pre_restore_backup)
    match = re.fullmatch(re.escape(ledger.name) + r"\.pre_restore_(\d+)", pre.name)
    assert match, pre.name
    assert pre.parent == ledger.parent
    assert started <= int(match.group(1)) <= finished
    assert pre.is_file()
    assert pre_restore_files(ledger) == [pre, pre.with_name(pre.name + ".meta")]
    pre_info = read_meta(pre)  # raises if the sidecar is missing or invalid
    assert pre_info.file_size == pre.stat().st_size
    assert pre_info.row_counts["transactions"] == 250
    assert pre_info.row_counts["scratch"] == 10
    report = verify_file(pre)
    assert report.ok, report.problems
    assert report.checks["checksum"] == "ok"
    assert report.checks["integrity_check"] == "ok"
    assert digest_of(pre) == modified

    messages = [r.getMessage() for r in caplog.records if r.name == "dagvault"]
    created = [i for i, m in enumerate(messages) if m.startswith("📦 Created pre-restore backup:")]
    restored = [
        i for i, m in enumerate(messages) if m.startswith("✅ Database restored from backup:")
    ]
    assert created and restored, messages
    assert str(pre) in messages[created[0]]
    assert str(backup) in messages[restored[0]]
    assert created[0] < restored[0]


def test_consecutive_restores_keep_each_pre_restore_backup(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)
    modified = digest_of(ledger)
    first = restore_backup(backup, ledger, allow_schema_change=True)
    second = restore_backup(backup, ledger)
    assert first.pre_restore_backup and second.pre_restore_backup
    assert first.pre_restore_backup != second.pre_restore_backup
    assert digest_of(Path(first.pre_restore_backup)) == modified
    assert digest_of(Path(second.pre_restore_backup)) == at_backup
    assert digest_of(ledger) == at_backup


# 3 and 4 ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_restore_into_new_or_empty_file(ledger: Path, tmp_path: Path, kind: str) -> None:
    backup, info, at_backup = backup_of(ledger, tmp_path / "backups")
    target = tmp_path / "elsewhere" / "new.db"
    if kind == "empty":
        target.parent.mkdir()
        target.touch()

    result = restore_backup(backup, target)

    assert result.success
    assert result.pre_restore_backup is None
    assert "the target database was empty; no pre-restore backup taken" in result.warnings
    assert pre_restore_files(target) == []
    assert digest_of(target) == at_backup
    assert scalar(target, "PRAGMA integrity_check") == "ok"
    assert result.backup_info.checksum == info.checksum
    assert not Path(f"{target}-journal").exists()


def test_restore_without_pre_restore_backup(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(
        backup,
        ledger,
        pre_restore_backup=False,
        pre_restore_off_by="--no-pre-restore-backup",
        allow_schema_change=True,
    )

    assert result.success
    assert result.pre_restore_backup is None
    assert "no pre-restore backup taken: --no-pre-restore-backup turned it off" in result.warnings
    assert pre_restore_files(ledger) == []
    assert digest_of(ledger) == at_backup


def test_restore_without_verification_warns(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(backup, ledger, verify=False, allow_schema_change=True)

    assert result.success
    assert "backup was not verified before the restore (--no-verify)" in result.warnings
    assert result.pre_restore_backup is not None
    assert digest_of(ledger) == at_backup


def test_restore_without_checksum_verification_warns(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(backup, ledger, verify_checksum=False, allow_schema_change=True)

    assert any("checksum not verified" in w for w in result.warnings), result.warnings
    assert digest_of(ledger) == at_backup


def test_restore_backup_onto_itself_is_refused(ledger: Path, tmp_path: Path) -> None:
    backup, _, _ = backup_of(ledger, tmp_path / "backups")
    image = backup.read_bytes()
    with pytest.raises(ConfigError) as caught:
        restore_backup(backup, backup)
    assert caught.value.exit_code == 2
    assert backup.read_bytes() == image


def test_restore_8k_page_backup_into_4k_wal_database(ledger: Path, tmp_path: Path) -> None:
    source = _ledger_with_page_size(tmp_path / "source8k.db", 8192)
    backup, info, at_backup = backup_of(source, tmp_path / "backups")
    assert info.page_size == 8192
    assert scalar(ledger, "PRAGMA page_size") == 4096
    before = digest_of(ledger)

    result = restore_backup(backup, ledger)

    assert result.success
    assert digest_of(ledger) == at_backup
    assert scalar(ledger, "PRAGMA integrity_check") == "ok"
    assert scalar(ledger, "PRAGMA page_size") == 8192
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"
    assert result.pre_restore_backup is not None
    assert digest_of(Path(result.pre_restore_backup)) == before
