"""Backups at a storage target (dagvault.storage): list, upload, fetch.

Object layout at a target: the data object ``<backup>`` (``<backup>.enc`` when
encrypted) and its sidecar ``<data object>.meta``, the same JSON as a local ``.meta``
except that ``file_size`` and ``checksum`` describe the stored (encrypted) bytes and
``encryption`` records the algorithm, the key id and the plaintext's size and SHA3-256.
An unencrypted target is therefore also an ordinary backup directory.

Atomicity: the data object is uploaded first and read back (size and SHA3-256 of what
the store returns), the sidecar last. A backup exists at a target only when its sidecar
exists, is valid and gives the data object's size; anything else is *incomplete* (an
upload or a removal that was cut off) and is never listed, verified or restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from dagvault import crypto
from dagvault.catalog import DATA_SUFFIXES, CatalogEntry, timestamp_in_name
from dagvault.checksum import CHUNK_BYTES, sha3_256_file
from dagvault.errors import BackupNotFound, StorageError, VerificationError
from dagvault.fsio import discard, temp_path, write_atomic
from dagvault.meta import META_SUFFIX, BackupInfo, meta_json, meta_path, parse_meta
from dagvault.storage import Store
from dagvault.storage.throttle import Throttle


@dataclass
class TargetCatalog:
    entries: list[CatalogEntry]  # complete backups, newest first
    incomplete: dict[str, str] = field(default_factory=dict)  # object name -> why


def data_object(name: str, encrypted: bool) -> str:
    return name + crypto.ENCRYPTED_SUFFIX if encrypted else name


def _backup_name(data: str) -> str:
    return data.removesuffix(crypto.ENCRYPTED_SUFFIX)


def list_target(store: Store) -> TargetCatalog:
    """The complete backups at ``store``, newest first, and the incomplete objects."""
    objects = store.list()
    catalog = TargetCatalog([])
    for name, obj in objects.items():
        if name.endswith(META_SUFFIX):
            if name[: -len(META_SUFFIX)] not in objects:
                catalog.incomplete[name] = "sidecar without its data object"
            continue
        if not _backup_name(name).endswith(DATA_SUFFIXES):
            continue
        if name + META_SUFFIX not in objects:
            catalog.incomplete[name] = "no .meta: an upload was cut off or is running"
            continue
        try:
            info = parse_meta(
                store.read(name + META_SUFFIX), store.location(name), name + META_SUFFIX
            )
        except BackupNotFound:
            continue  # removed while we listed
        except VerificationError as exc:
            catalog.incomplete[name] = exc.message
            continue
        if info.file_size != obj.size:
            catalog.incomplete[name] = (
                f"{obj.size} bytes stored, its .meta says {info.file_size}: an upload "
                "was cut off or the object was replaced"
            )
            continue
        path = Path(_backup_name(name))
        catalog.entries.append(
            CatalogEntry(path, obj.size, info.timestamp, info, location=store.location(name))
        )
    catalog.entries.sort(key=lambda e: e.sort_key, reverse=True)
    return catalog


def find_entry(
    store: Store, name: str, by_name: dict[str, CatalogEntry] | None = None
) -> tuple[CatalogEntry, dict[str, CatalogEntry]]:
    """The complete backup ``name`` (with or without ``.enc``) and every backup by name
    (``by_name``: a listing the caller already has)."""
    if by_name is None:
        by_name = {e.path.name: e for e in list_target(store).entries}
    entry = by_name.get(_backup_name(name))
    if entry is None:
        raise BackupNotFound(
            f"No complete backup {name} at {store.url}",
            f"List the backups there with `dagvault list --backup-dir {store.url}`.",
        )
    return entry, by_name


def _stored_digest(store: Store, name: str) -> tuple[int, str]:
    """Size and SHA3-256 of the object as the store returns it."""
    digest, size = hashlib.sha3_256(), 0
    with store.open(name) as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def upload_backup(
    backup: Path,
    info: BackupInfo,
    store: Store,
    key: bytes | None,
    *,
    throttle: Throttle | None = None,
) -> BackupInfo:
    """Copy the local ``backup`` (described by ``info``) to ``store``, encrypted with
    ``key`` if given, the data at most at ``throttle``'s rate; return the sidecar written
    there.

    The local file is checked against ``info`` first (a damaged backup is never copied),
    the uploaded object is read back and compared, and the sidecar goes last."""
    size = backup.stat().st_size
    if size != info.file_size or sha3_256_file(backup) != info.checksum:
        raise VerificationError(
            f"{backup} does not match its .meta (size or SHA3-256); not copying it",
            "Run `dagvault verify` on it; copy another backup.",
        )
    data = data_object(backup.name, key is not None)
    sealed = temp_path(backup.with_name(backup.name + ".sealed"))
    try:
        stored, checksum, encryption = backup, info.checksum, None
        if key is not None:
            crypto.encrypt_file(backup, sealed, key)
            stored, checksum = sealed, sha3_256_file(sealed)
            encryption = {
                "algorithm": crypto.ALGORITHM,
                "key_id": crypto.key_id(key).hex(),
                "plaintext_size": info.file_size,
                "plaintext_checksum": info.checksum,
            }
        stored_size = stored.stat().st_size
        # An older sidecar must never describe the object while it is being replaced.
        store.delete(data + META_SUFFIX)
        store.upload(stored, data, throttle=throttle)
        if _stored_digest(store, data) != (stored_size, checksum):
            store.delete(data)
            err = StorageError(
                f"{store.location(data)} read back differs from what was uploaded",
                "The copy was removed; run the command again.",
            )
            err.retryable = True
            raise err
        remote = replace(
            info,
            backup_path=store.location(data),
            file_size=stored_size,
            checksum=checksum,
            encryption=encryption,
        )
        store.write(data + META_SUFFIX, meta_json(remote))
        return remote
    finally:
        discard(sealed)


def record_verification(store: Store, entry: CatalogEntry, info: BackupInfo) -> None:
    """Store a new verification record in the sidecar at the target."""
    assert entry.info is not None
    updated = replace(entry.info, verification=info.verification, quality=info.quality)
    data = _data_name(entry)
    store.write(data + META_SUFFIX, meta_json(updated))


def _data_name(entry: CatalogEntry) -> str:
    assert entry.location is not None
    return entry.location.rpartition("/")[2]


def _fetch_one(store: Store, entry: CatalogEntry, dest_dir: Path, key: bytes | None) -> Path:
    """Download one backup into ``dest_dir`` as a plain local backup with its .meta."""
    info = entry.info
    assert info is not None
    data = _data_name(entry)
    local = dest_dir / entry.path.name
    fetched = temp_path(local.with_name(local.name + ".fetched"))
    try:
        digest, size = hashlib.sha3_256(), 0
        with store.open(data) as src, open(fetched, "xb") as out:
            while chunk := src.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if (size, digest.hexdigest()) != (info.file_size, info.checksum):
            raise VerificationError(
                f"{entry.where}: the stored object does not match its .meta (size or "
                "SHA3-256): it was damaged at the target",
                "Restore from another replica or backup; `dagvault replicate` copies it again "
                "once the damaged copy is removed.",
            )
        encryption = info.encryption
        if encryption:
            key = crypto.require_key(key, f"{entry.where} (encrypted)")
            crypto.decrypt_file(fetched, local, key, entry.where)
            info = replace(
                info,
                file_size=encryption["plaintext_size"],
                checksum=encryption["plaintext_checksum"],
                encryption=None,
            )
        else:
            os.replace(fetched, local)
        write_atomic(meta_path(local), meta_json(replace(info, backup_path=str(local))))
        return local
    finally:
        discard(fetched)


def fetch_chain(
    store: Store,
    name: str,
    dest_dir: Path,
    key: bytes | None,
    by_name: dict[str, CatalogEntry] | None = None,
) -> Path:
    """Download backup ``name`` and every backup its chain needs into ``dest_dir``
    (decrypted, each with a plaintext .meta); return the local path of ``name``.

    Each object is checked against its sidecar while it downloads; the caller then
    verifies and uses the local copy like any local backup."""
    entry, by_name = find_entry(store, name, by_name)
    chain = [entry]
    while chain[-1].info is not None and chain[-1].info.backup_type != "Full":
        parent = chain[-1].info.metadata.get("parent")
        if parent not in by_name or len(chain) > len(by_name):
            raise VerificationError(
                f"{chain[-1].where}: broken chain at {store.url}: parent {parent} is missing",
                "Restore an older backup whose chain is complete, or replicate again.",
            )
        chain.append(by_name[parent])
    for link in chain:
        _fetch_one(store, link, dest_dir, key)
    return dest_dir / entry.path.name


@contextlib.contextmanager
def fetched(
    store: Store,
    name: str,
    key: bytes | None,
    staging_root: Path | None,
    by_name: dict[str, CatalogEntry] | None = None,
) -> Iterator[Path]:
    """``fetch_chain`` into a private staging directory removed afterwards."""
    with private_dir(staging_root, ".dagvault-fetch-") as staging:
        yield fetch_chain(store, name, staging, key, by_name)


@contextlib.contextmanager
def private_dir(root: Path | None, prefix: str) -> Iterator[Path]:
    """A new directory of our own under ``root`` (created if need be; the system's temp
    directory by default), removed with everything in it afterwards."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def name_timestamp(name: str) -> int | None:
    return timestamp_in_name(_backup_name(name))
