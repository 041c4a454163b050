"""Backup verification (dagvault.verify): every corruption is caught and named, never passed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from _helpers import query, read_meta_json, sha3_file, write_meta_json

from dagvault.backup import create_backup
from dagvault.errors import BackupNotFound
from dagvault.meta import meta_path, read_meta
from dagvault.verify import verify_all, verify_backup, verify_file

ALL_CHECKS_OK = {"metadata": "ok", "checksum": "ok", "integrity_check": "ok", "row_counts": "ok"}
REQUIRED_FIELDS = (
    "format_version",
    "timestamp",
    "backup_path",
    "database_path",
    "file_size",
    "total_transactions",
    "total_nodes",
    "backup_type",
    "compression_enabled",
    "checksum",
    "metadata",
    "created_at",
)


@pytest.fixture
def backup(ledger: Path, tmp_path: Path) -> Path:
    return Path(create_backup(ledger, tmp_path / "backups").backup_path)


def flip_bit_in_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(data)


def page_size_of(data: bytes) -> int:
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def zero_a_btree_page_and_fix_checksum(path: Path) -> int:
    """Zero a table/index leaf page past the middle, then make the sidecar's checksum match.

    Returns the 1-based number of the zeroed page.
    """
    data = bytearray(path.read_bytes())
    page_size = page_size_of(data)
    assert int.from_bytes(data[36:40], "big") == 0, "no free pages: every page is in use"
    pages = len(data) // page_size
    for index in range(pages // 2, pages):
        offset = index * page_size
        if data[offset] in (0x0A, 0x0D):  # index leaf / table leaf b-tree page
            data[offset : offset + page_size] = bytes(page_size)
            break
    else:
        raise AssertionError("no leaf page found past the middle")
    path.write_bytes(data)
    document = read_meta_json(path)
    document["checksum"] = sha3_file(path)
    write_meta_json(path, document)
    return index + 1


def desync_index_and_fix_checksum(backup: Path) -> None:
    """Change one transaction's sender inside its table page (not in the sender index).

    The table still counts the same rows, so only a full integrity_check, which compares
    every index with its table, notices; quick_check by design does not.
    """
    [(sender,)] = query(backup, "SELECT sender FROM transactions WHERE id = 150")
    data = bytearray(backup.read_bytes())
    page_size = page_size_of(data)
    position = -1
    while True:
        position = data.find(sender.encode(), position + 1)
        assert position > 0, "sender not found in a table leaf page"
        page = position - position % page_size
        if data[page] == 0x0D:  # table b-tree leaf
            break
    data[position + 2 : position + 4] = b"zz"
    backup.write_bytes(data)
    document = read_meta_json(backup)
    document["checksum"] = sha3_file(backup)
    write_meta_json(backup, document)


def assert_rejected(
    report_path: Path,
    backup: Path,
    check: str,
    fragments: tuple[str, ...],
    problems: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert report_path == backup
    matching = [p for p in problems if p.startswith(f"{check}: ")]
    assert matching, problems
    for fragment in fragments:
        assert any(fragment in p for p in matching), (fragment, matching)
    # The log event names the file and the reason.
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "dagvault" and r.levelno == logging.WARNING
    ]
    assert any(
        "Backup integrity check failed" in w and str(backup) in w and check in w for w in warnings
    ), warnings


# --------------------------------------------------------------------------- valid


def test_valid_backup_passes_every_check_and_is_recorded(backup: Path) -> None:
    data_before = sha3_file(backup)
    assert read_meta_json(backup)["verification"]["status"] == "unverified"

    report = verify_backup(backup)

    assert report.ok and report.problems == [] and report.warnings == []
    assert report.checks == ALL_CHECKS_OK
    assert report.to_json()["valid"] is True
    assert report.to_json()["total_transactions"] == 300
    recorded = read_meta_json(backup)["verification"]
    assert recorded["status"] == "verified"
    assert recorded["method"] == "integrity_check"
    assert recorded["checked_at"]
    assert recorded["problems"] == []
    assert read_meta(backup).verified
    assert sha3_file(backup) == data_before  # verification never touches the data file


def test_verify_file_alone_records_nothing(backup: Path) -> None:
    meta_before = meta_path(backup).read_bytes()
    assert verify_file(backup).ok
    assert meta_path(backup).read_bytes() == meta_before


def test_quick_verification_runs_quick_check(backup: Path) -> None:
    report = verify_backup(backup, quick=True)
    assert report.ok
    assert report.checks["quick_check"] == "ok"
    assert "integrity_check" not in report.checks
    assert read_meta_json(backup)["verification"]["method"] == "quick_check"


def test_checksum_can_be_skipped_with_a_warning(backup: Path) -> None:
    report = verify_file(backup, checksum=False)
    assert report.ok
    assert report.checks["checksum"] == "skipped"
    assert report.warnings


def test_missing_backup_is_backup_not_found(tmp_path: Path) -> None:
    with pytest.raises(BackupNotFound) as caught:
        verify_file(tmp_path / "nope_1700000000.db")
    assert caught.value.exit_code == 3


# --------------------------------------------------------------------------- corruptions


def _edit_meta(edit: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def apply(backup: Path) -> None:
        document = read_meta_json(backup)
        edit(document)
        write_meta_json(backup, document)

    return apply


def _truncate(backup: Path) -> None:
    with open(backup, "r+b") as fh:
        fh.truncate(backup.stat().st_size // 2)


def _bump_row_count(document: dict[str, object]) -> None:
    counts = document["row_counts"]
    assert isinstance(counts, dict)
    counts["transactions"] += 1


def _extra_table(document: dict[str, object]) -> None:
    counts = document["row_counts"]
    assert isinstance(counts, dict)
    counts["ghosts"] = 0


def _garble_header_and_fix_checksum(backup: Path) -> None:
    backup.write_bytes(b"garbage garbage!" + backup.read_bytes()[16:])
    _edit_meta(lambda d: d.update(checksum=sha3_file(backup)))(backup)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...], bool]] = {
    # name: (corrupt, failing check, fragments of its reason, sidecar still readable)
    "flipped-bit": (flip_bit_in_middle, "checksum", ("SHA3-256 is",), True),
    "truncated": (_truncate, "file_size", ("expected", "bytes, found"), True),
    "meta-deleted": (lambda b: meta_path(b).unlink(), "metadata", (".db.meta is missing",), False),
    "meta-invalid-json": (
        lambda b: meta_path(b).write_text('{"timestamp": 17'),
        "metadata",
        (".db.meta is unreadable",),
        False,
    ),
    "meta-not-an-object": (
        lambda b: meta_path(b).write_text("[1, 2]"),
        "metadata",
        ("not a JSON object",),
        False,
    ),
    "meta-wrong-checksum": (
        _edit_meta(lambda d: d.update(checksum="0" * 64)),
        "checksum",
        ("metadata says " + "0" * 64,),
        True,
    ),
    "meta-checksum-not-hex": (
        _edit_meta(lambda d: d.update(checksum="not-a-digest")),
        "metadata",
        ("'checksum'",),
        False,
    ),
    "meta-checksum-trailing-newline": (
        _edit_meta(lambda d: d.update(checksum=str(d["checksum"]) + "\n")),
        "metadata",
        ("'checksum' is not a SHA3-256 hex digest",),
        False,
    ),
    "meta-wrong-size": (
        _edit_meta(lambda d: d.update(file_size=int(str(d["file_size"])) + 1)),
        "file_size",
        ("expected",),
        True,
    ),
    "meta-row-counts-changed": (
        _edit_meta(_bump_row_count),
        "row_counts",
        ("transactions: expected 301, found 300",),
        True,
    ),
    "meta-row-counts-extra-table": (
        _edit_meta(_extra_table),
        "row_counts",
        ("ghosts: expected 0, found None",),
        True,
    ),
    "meta-unknown-backup-type": (
        _edit_meta(lambda d: d.update(backup_type="Snapshot")),
        "metadata",
        ("backup_type",),
        False,
    ),
    "meta-future-format": (
        _edit_meta(lambda d: d.update(format_version=99)),
        "metadata",
        ("format_version 99",),
        False,
    ),
    "meta-verification-not-an-object": (
        _edit_meta(lambda d: d.update(verification="verified")),
        "metadata",
        ("verification",),
        False,
    ),
    "btree-zeroed-checksum-fixed": (
        zero_a_btree_page_and_fix_checksum,
        "integrity_check",
        (),
        True,
    ),
    "header-garbled-checksum-fixed": (
        _garble_header_and_fix_checksum,
        "sqlite",
        ("not a database",),
        True,
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_detected_and_named(
    backup: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt, check, fragments, readable_meta = CORRUPTIONS[name]
    corrupt(backup)
    data_before = backup.read_bytes()
    caplog.set_level(logging.WARNING, logger="dagvault")

    report = verify_backup(backup)

    assert not report.ok
    assert report.to_json()["valid"] is False
    assert report.checks.get(check, "").startswith("failed: ")
    assert_rejected(report.path, backup, check, fragments, report.problems, caplog)
    if check == "metadata":
        assert str(backup) in report.problems[0]  # the metadata reason names the file
    assert backup.read_bytes() == data_before
    if readable_meta:
        recorded = read_meta_json(backup)["verification"]
        assert recorded["status"] == "failed"
        assert recorded["problems"] == report.problems
    elif name == "meta-deleted":
        assert not meta_path(backup).exists()  # verify never invents a sidecar


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_meta_missing_a_field_is_rejected(
    backup: Path, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = read_meta_json(backup)
    del document[field]
    write_meta_json(backup, document)
    caplog.set_level(logging.WARNING, logger="dagvault")

    report = verify_file(backup)

    assert not report.ok
    assert report.checks["metadata"].startswith("failed: ")
    assert_rejected(report.path, backup, "metadata", (f"'{field}'",), report.problems, caplog)


def test_damaged_btree_is_caught_by_quick_check_too(backup: Path) -> None:
    zero_a_btree_page_and_fix_checksum(backup)
    report = verify_backup(backup, quick=True)
    assert not report.ok
    assert report.checks["checksum"] == "ok"
    assert report.checks["quick_check"].startswith("failed: ")
    assert read_meta_json(backup)["verification"]["method"] == "quick_check"
    assert read_meta_json(backup)["verification"]["status"] == "failed"


def test_index_out_of_step_with_its_table_fails_full_check_only(backup: Path) -> None:
    desync_index_and_fix_checksum(backup)

    full = verify_file(backup)
    assert not full.ok
    assert full.checks["checksum"] == "ok"
    assert full.checks["integrity_check"].startswith("failed: ")
    assert "idx_transactions_sender" in full.checks["integrity_check"]

    quick = verify_file(backup, quick=True)  # proves quick=True ran quick_check, not the full one
    assert quick.checks["quick_check"] == "ok"
    assert "integrity_check" not in quick.checks


# --------------------------------------------------------------------------- verify_all


def test_verify_all_reports_good_and_bad(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    good = Path(create_backup(ledger, backups).backup_path)
    bad = Path(create_backup(ledger, backups).backup_path)
    flip_bit_in_middle(bad)

    reports = verify_all(backups)

    assert [r.path for r in reports] == [bad, good]  # newest first
    assert {r.path: r.ok for r in reports} == {good: True, bad: False}
    assert read_meta_json(good)["verification"]["status"] == "verified"
    assert read_meta_json(bad)["verification"]["status"] == "failed"


def test_verify_all_includes_data_files_without_sidecar(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    good = Path(create_backup(ledger, backups).backup_path)
    orphan = backups / "blockchain_1700000000.db"
    orphan.write_bytes(good.read_bytes())
    reports = {r.path: r for r in verify_all(backups)}
    assert reports[good].ok
    assert not reports[orphan].ok
    assert reports[orphan].checks["metadata"].startswith("failed: ")


def test_verify_all_of_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for directory in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(BackupNotFound) as caught:
            verify_all(directory)
        assert caught.value.exit_code == 3
        assert str(directory) in caught.value.message


def test_a_version_1_sidecar_without_meta_checksum_still_reads(backup: Path) -> None:
    document = read_meta_json(backup)
    del document["meta_checksum"]
    document["format_version"] = 1  # as written before sidecars were checksummed
    meta_path(backup).write_text(json.dumps(document))
    assert verify_file(backup).ok
    document["format_version"] = 2  # a version 2 sidecar must carry its checksum
    meta_path(backup).write_text(json.dumps(document))
    report = verify_file(backup)
    assert not report.ok
    assert "meta_checksum is missing" in report.checks["metadata"]


def test_an_edited_sidecar_and_a_renamed_backup_are_refused(backup: Path) -> None:
    document = read_meta_json(backup)
    document["total_transactions"] += 1  # no other check could catch this edit
    meta_path(backup).write_text(json.dumps(document))
    assert "meta_checksum" in verify_file(backup).checks["metadata"]
    write_meta_json(backup, document)  # (re-signed: the edit alone passes the other checks)
    assert verify_file(backup).ok

    renamed = backup.with_name("blockchain_1.db")
    backup.rename(renamed)
    meta_path(backup).rename(meta_path(renamed))
    report = verify_file(renamed)
    assert (
        report.checks["metadata"]
        == f"failed: it was written as {backup.name}, not as {renamed.name}"
    )
