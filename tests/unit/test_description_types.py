"""Clients written from the system description can read what dagvault writes.

The description's Rust types (BackupInfo, BackupType, RestoreResult, BackupSchedule, the
response envelope and each operation's ``data``) as strict pydantic models: every field the
description has must be there with exactly its type (u64/i64 in range, String, bool,
Option, Vec<String>, HashMap<String, String>, the BackupType spellings). Other fields are
allowed: serde ignores unknown fields unless told otherwise. Checked against real ``.meta``
sidecars of the odd ledger (full, incremental, differential; plain and compressed), format 1
and 2 sidecars, ``list --json`` and the API's answers over real HTTP.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_description_types.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import (
    legacy_sidecar,
    read_meta_json,
)
from _shared.description_types import PROFILE, BackupInfo, _backups
from pydantic import ValidationError

from dagvault.backup import create_backup
from dagvault.errors import VerificationError
from dagvault.meta import meta_path, read_meta, sidecar_checksum
from dagvault.storage import open_store
from dagvault.storage.offsite.operations import restore_from_target
from dagvault.storage.offsite.replicate import replicate
from dagvault.verify import verify_backup

KEY = bytes(range(32))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "zstd"])
def test_sidecars_are_the_description_backup_info(
    odd_ledger: Path, tmp_path: Path, compress: bool
) -> None:
    for path in _backups(odd_ledger, tmp_path / "backups", compress):
        document = read_meta_json(path)
        BackupInfo.model_validate(document)
        assert document["compression_enabled"] is compress
        info = read_meta(path)  # the strings read back as the numbers and flags they are
        assert info.page_size == 8192 and info.page_count and info.page_count > 1
        assert isinstance(info.read_in_place, bool) and info.duration_seconds >= 0
        assert info.row_counts["tx_log"] == info.total_transactions >= 200
        if info.backup_type != "Full":
            assert info.changed_pages and 0 < info.changed_pages < info.page_count


def test_an_encrypted_copy_with_a_format_2_sidecar_still_restores(
    odd_ledger: Path, tmp_path: Path
) -> None:
    """Before format 3 the plaintext's size and checksum were in metadata.encryption. Such a
    copy reads and decrypts, but with the key configured an untagged sidecar is refused (no
    downgrade, docs/security.md) until it is admitted with ``verify --sign-legacy``."""
    taken = _backups(odd_ledger, tmp_path / "backups", compress=True)
    store = open_store(f"file://{tmp_path / 'offsite'}")
    replicate(tmp_path / "backups", store, KEY)
    for path in taken:
        sidecar = path.name + ".enc.meta"
        old = legacy_sidecar(json.loads(store.read(sidecar)), 2)
        assert old["metadata"]["encryption"]["plaintext_checksum"] == read_meta(path).checksum
        store.write(sidecar, json.dumps(old).encode())
        assert read_meta_json(path)["format_version"] == 3  # the local one is untouched
    with pytest.raises(VerificationError, match="no authentication tag") as refused:
        restore_from_target(store, taken[-1].name, tmp_path / "restored.db", KEY)
    assert "--sign-legacy" in refused.value.hint
    assert not (tmp_path / "restored.db").exists()


def test_a_format_3_sidecar_with_a_number_in_metadata_is_invalid(
    odd_ledger: Path, tmp_path: Path
) -> None:
    info = create_backup(odd_ledger, tmp_path / "backups", profile=PROFILE)
    path = Path(info.backup_path)
    document = read_meta_json(path)
    document["metadata"]["page_size"] = 8192
    del document["meta_checksum"]
    meta_path(path).write_text(
        json.dumps({**document, "meta_checksum": sidecar_checksum(document)})
    )
    report = verify_backup(path)
    assert not report.ok
    assert "metadata.page_size is not a string" in report.checks["metadata"]


def test_the_models_are_strict() -> None:
    """The schema refuses what the description's client would: a test that can fail."""
    good = {
        "timestamp": 1704067200,
        "backup_path": "./backups/blockchain_1704067200.db",
        "database_path": "./blockchain.db",
        "file_size": 1024000,
        "total_transactions": 1000,
        "total_nodes": 16,
        "backup_type": "Full",
        "compression_enabled": False,
        "checksum": "0" * 64,
        "metadata": {"page_size": "4096"},
    }
    BackupInfo.model_validate(good)
    for field, value in [
        ("metadata", {"page_size": 4096}),
        ("metadata", {"row_counts": {"t": 1}}),
        ("backup_type", "full"),
        ("file_size", -1),
        ("total_nodes", True),
        ("compression_enabled", "false"),
        ("checksum", None),
    ]:
        with pytest.raises(ValidationError):
            BackupInfo.model_validate({**good, field: value})
    with pytest.raises(ValidationError):
        BackupInfo.model_validate({k: v for k, v in good.items() if k != "metadata"})
