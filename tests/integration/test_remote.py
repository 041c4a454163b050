"""Backups at storage targets, core API: a real S3-compatible server (moto's server mode,
the session's ``s3_endpoint``) on loopback, credentials in the standard AWS environment
variables, and file:// directories. No GCS server: gs:// goes through the same fsspec
store, and no GCS emulator ships on PyPI.

Integration half; the tests that need no server or child process are in
tests/unit/test_remote.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _helpers import content_digest
from _s3 import CuttingProxy
from _shared.remote import KEY

from dagvault import crypto
from dagvault.backup import create_backup
from dagvault.errors import (
    BackupNotFound,
    EncryptionKeyError,
    StorageError,
    VerificationError,
)
from dagvault.meta import sidecar_checksum
from dagvault.retention import RetentionPolicy
from dagvault.sample import create_sample_ledger
from dagvault.storage import open_store
from dagvault.storage.offsite.objects import fetch_chain, list_target
from dagvault.storage.offsite.operations import (
    cleanup_target,
    prune_target,
    restore_from_target,
    verify_at_target,
)
from dagvault.storage.offsite.replicate import lag, read_status, replicate


def _objects(s3_target: str) -> dict[str, bytes]:
    store = open_store(s3_target)
    return {name: store.read(name) for name in store.list()}


def test_replicate_uploads_data_then_meta_and_restores_the_chain(
    backups: Path, ledger: Path, s3_target: str, tmp_path: Path
) -> None:
    report = replicate(backups, open_store(s3_target), None)
    assert len(report.copied) == 2 and report.skipped == {}
    assert (report.missing, report.lag_seconds) == (0, 0)
    objects = _objects(s3_target)
    for local in (p for p in backups.iterdir() if p.suffix in (".db", ".incr")):
        assert objects[local.name] == local.read_bytes()
        meta = json.loads(objects[local.name + ".meta"])
        assert meta["checksum"] == hashlib.sha3_256(objects[local.name]).hexdigest()
        assert meta["backup_path"] == f"{s3_target}/{local.name}"
    entries = list_target(open_store(s3_target)).entries
    assert [e.info.backup_type for e in entries] == ["Incremental", "Full"]

    scratch = tmp_path / "scratch.db"
    result = restore_from_target(open_store(s3_target), entries[0].path.name, scratch, None)
    assert result.success
    assert content_digest(scratch) == content_digest(ledger)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dagvault-fetch-")]

    # Nothing more to copy the second time.
    assert replicate(backups, open_store(s3_target), None).copied == []


def test_objects_without_a_matching_meta_are_never_listed(backups: Path, s3_target: str) -> None:
    store = open_store(s3_target)
    full = next(backups.glob("*.db"))
    store.upload(full, full.name)  # data only: an upload cut off before its .meta
    incr = next(backups.glob("*.incr"))
    store.upload(incr, incr.name)
    meta = json.loads((backups / f"{incr.name}.meta").read_text())
    meta["file_size"] += 1  # a .meta that does not describe the object
    store.write(incr.name + ".meta", json.dumps(meta).encode())
    catalog = list_target(store)
    assert catalog.entries == []
    assert set(catalog.incomplete) == {full.name, incr.name}
    with pytest.raises(BackupNotFound):
        fetch_chain(store, full.name, backups.parent, None)


def test_a_connection_dropped_mid_upload_is_retried(
    backups: Path, s3_target: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CuttingProxy(int(s3_endpoint.rpartition(":")[2]), cut_after=64 * 1024, cuts=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        report = replicate(backups, open_store(s3_target), None)
    finally:
        proxy.close()
    assert proxy.cuts_done == 1
    assert len(report.copied) == 2
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    full = next(backups.glob("*.db"))
    assert _objects(s3_target)[full.name] == full.read_bytes()


def test_a_connection_that_keeps_dropping_fails_cleanly_and_nothing_is_listed(
    backups: Path, s3_target: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CuttingProxy(int(s3_endpoint.rpartition(":")[2]), cut_after=64 * 1024, cuts=1000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries: only ours count
    try:
        with pytest.raises(StorageError) as caught:
            replicate(backups, open_store(s3_target), None)
    finally:
        proxy.close()
    assert caught.value.retryable and proxy.cuts_done >= 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    assert list_target(open_store(s3_target)).entries == []


def test_encrypted_copies_checksum_the_stored_bytes_and_need_the_key(
    backups: Path, ledger: Path, s3_target: str, tmp_path: Path
) -> None:
    store = open_store(s3_target)
    replicate(backups, store, KEY)
    objects = _objects(s3_target)
    full = next(backups.glob("*.db"))
    stored = objects[full.name + ".enc"]
    assert stored.startswith(crypto.MAGIC) and full.read_bytes()[:16] not in stored
    meta = json.loads(objects[full.name + ".enc.meta"])
    assert meta["checksum"] == hashlib.sha3_256(stored).hexdigest()
    assert (
        meta["encryption"]["plaintext_checksum"]
        == json.loads((backups / f"{full.name}.meta").read_text())["checksum"]
    )

    newest = list_target(store).entries[0].path.name
    with pytest.raises(EncryptionKeyError, match="needs the encryption key"):
        restore_from_target(store, newest, tmp_path / "a.db", None)
    with pytest.raises(EncryptionKeyError, match="another key"):
        restore_from_target(store, newest, tmp_path / "b.db", bytes(32))
    restore_from_target(store, newest, tmp_path / "c.db", KEY)
    assert content_digest(tmp_path / "c.db") == content_digest(ledger)
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


def test_tampered_ciphertext_is_detected_even_with_a_matching_meta(
    backups: Path, s3_target: str, tmp_path: Path
) -> None:
    store = open_store(s3_target)
    replicate(backups, store, KEY)
    full = next(backups.glob("*.db"))
    data = bytearray(store.read(full.name + ".enc"))
    data[len(data) // 2] ^= 0x01
    store.write(full.name + ".enc", bytes(data))  # damaged: checksum in .meta differs
    report = verify_at_target(store, full.name, KEY, staging=tmp_path)
    assert not report.ok and "damaged at the target" in report.problems[0]
    meta = json.loads(store.read(full.name + ".enc.meta"))
    assert meta["verification"]["status"] == "failed"

    meta["checksum"] = hashlib.sha3_256(bytes(data)).hexdigest()  # a forger fixes the .meta
    meta["meta_checksum"] = sidecar_checksum(meta)  # (its checksum too)
    store.write(full.name + ".enc.meta", json.dumps(meta).encode())
    with pytest.raises(VerificationError, match="fails authentication"):
        restore_from_target(store, full.name, tmp_path / "x.db", KEY)


def test_verify_at_target_records_the_outcome_in_the_remote_meta(
    backups: Path, s3_target: str, tmp_path: Path
) -> None:
    store = open_store(s3_target)
    replicate(backups, store, None)
    for entry in list_target(store).entries:
        report = verify_at_target(store, entry.path.name, None, staging=tmp_path)
        assert report.ok, report.problems
        assert report.to_json()["backup_path"] == entry.where
    assert {e.info.verification.status for e in list_target(store).entries} == {"verified"}


def test_prune_at_target_never_breaks_a_chain(backups: Path, ledger: Path, s3_target: str) -> None:
    create_sample_ledger(ledger, 10, seed=9, nodes=16, append=True)
    create_backup(ledger, backups, kind="incremental")
    store = open_store(s3_target)
    replicate(backups, store, None)
    plan = prune_target(store, RetentionPolicy(keep_last=1), dry_run=True)
    assert plan.plan.remove == []  # the newest delta needs its whole chain
    create_backup(ledger, backups)  # a new full: the old chain is now prunable
    replicate(backups, store, None)
    result = prune_target(store, RetentionPolicy(keep_last=1))
    names = [e.path.name for e in list_target(store).entries]
    assert len(names) == 1 and names[0].endswith(".db")
    assert len(result.removed_files) == 6
    assert set(store.list()) == {names[0], names[0] + ".meta"}
    assert cleanup_target(store, 1).removed_files == []


def test_lag_reports_what_the_target_lacks_and_replicate_records_it(
    backups: Path, ledger: Path, s3_target: str
) -> None:
    store = open_store(s3_target)
    before = lag(backups, store)
    assert (before.missing, before.lag_seconds, before.target_newest) == (2, None, None)
    replicate(backups, store, None)
    create_backup(ledger, backups, name="later")
    after = lag(backups, store)
    assert after.missing == 1 and after.lag_seconds is not None
    assert read_status(backups)[s3_target]["missing"] == 0
    replicate(backups, store, None)
    assert read_status(backups)[s3_target]["lag_seconds"] == 0


def test_a_missing_bucket_is_a_clear_storage_error(backups: Path, s3_endpoint: str) -> None:
    store = open_store("s3://dagvault-no-such-bucket/prefix")
    with pytest.raises(StorageError, match="bucket does not exist") as caught:
        replicate(backups, store, None)
    assert not caught.value.retryable


def test_a_damaged_local_backup_is_not_copied(backups: Path, s3_target: str) -> None:
    full = next(backups.glob("*.db"))
    data = bytearray(full.read_bytes())
    data[5000] ^= 0xFF
    full.write_bytes(bytes(data))
    report = replicate(backups, open_store(s3_target), None)
    assert report.copied == []
    incr = next(backups.glob("*.incr")).name
    assert "does not match its .meta" in report.skipped[full.name]
    assert "is not at the target" in report.skipped[incr]
    assert open_store(s3_target).list() == {}
