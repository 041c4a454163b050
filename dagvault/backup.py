"""Full backups (``create_backup``; the file format is docs/backup-format.md).

``<DIR>/<NAME>_<unix-seconds>.db`` plus ``<file>.meta``. The data file is written
to a hidden temp name, fsynced while its SHA3-256 is computed, published without
ever overwriting (link(2)), and only then is the sidecar written: a backup without
a valid sidecar is never reported valid.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import zstandard

from dagvault import db, events, journal, lock, pages, permissions, progress
from dagvault.authtag import sign
from dagvault.base import Base, DeltaPlan, file_id, find_base, plan_delta
from dagvault.checksum import sha3_256_file
from dagvault.compress import SUFFIX, compress_file
from dagvault.delta import write_delta
from dagvault.errors import ConfigError, storage_error
from dagvault.fsio import discard, ensure_dir, publish, remove_stale_temp_files, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, Verification, read_meta, write_meta
from dagvault.meta_values import as_strings
from dagvault.pinned import PinnedRead
from dagvault.quality.backup_gate import GateOptions, check_new_image, journal_failure, with_verdict
from dagvault.quality.report import QualityReport
from dagvault.safedir import HeldDir
from dagvault.snapshot import Snapshot, integrity_problems, snapshot_to_file

# A name becomes the first part of file names ("<name>_<ts>_<n>.db.zst.meta"); 200 bytes of
# UTF-8 leave room for that within the 255-byte file name limit of ext4/XFS/APFS.
_NAME_MAX_CHARACTERS = 101
_NAME_MAX_BYTES = 200
_NAME_PUNCTUATION = frozenset("._-")
_SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")
log = logging.getLogger(__name__)
DELTA_SUFFIXES = {"Incremental": ".incr", "Differential": ".diff"}
BACKUP_KINDS = ("full", "incremental", "differential")


def backup_kind(backup_type: str) -> str:
    """The kind ("full", "incremental", "differential") that ``backup_type`` names in any
    case: the documented "Full"/"Incremental"/"Differential" as well as "full" or "FULL"."""
    kind = backup_type.lower()
    if kind not in BACKUP_KINDS:
        raise ConfigError(
            f"Unknown backup type {backup_type!r}",
            "Use Full, Incremental or Differential (in any case).",
        )
    return kind


def validate_name(name: str) -> str:
    """``name`` if it is safe as the first part of a backup's file names: letters and digits
    of any script (a ledger named ``knoten-ü.db`` backs up as ``knoten-ü``), '.', '_' and
    '-', never a path separator, control or formatting character, leading dot or "..".
    """
    well_formed = (
        0 < len(name) <= _NAME_MAX_CHARACTERS
        and len(name.encode("utf-8", "surrogatepass")) <= _NAME_MAX_BYTES
        and name[0].isalnum()
        and all(char.isalnum() or char in _NAME_PUNCTUATION for char in name)
        and ".." not in name
    )
    if not well_formed:
        raise ConfigError(
            f"Invalid backup name {name!r}",
            "Use letters, digits, '.', '_' and '-' only (no path separators), "
            f"at most {_NAME_MAX_CHARACTERS} characters ({_NAME_MAX_BYTES} bytes in UTF-8), "
            "starting with a letter or digit.",
        )
    return name


def numbered_paths(directory: Path, template: str) -> Callable[..., Iterator[Path]]:
    """Paths from ``template`` ({ts}: unix seconds, {n}: "" then "_2", "_3", …) plus a
    suffix, so that several backups within one second get distinct names."""

    def candidates(timestamp: int, suffix: str = "") -> Iterator[Path]:
        yield directory / (template.format(ts=timestamp, n="") + suffix)
        for n in range(2, 10_000):
            yield directory / (template.format(ts=timestamp, n=f"_{n}") + suffix)

    return candidates


def _now() -> tuple[int, str]:
    now = datetime.now(UTC)
    return int(now.timestamp()), now.isoformat(timespec="microseconds")


@dataclass
class _Checked:
    """What was checked while a plain full backup was hashed."""

    problems: list[str] | None = None  # integrity_check's ([] when sound; None: not run)
    gate: QualityReport | None = None  # the quality gate's verdict (None: not run)
    gate_seconds: float = 0.0
    # When the backup itself was done (hashed, fsynced, integrity-checked): its duration
    # leaves the gate out, as for a backup gated afterwards (0: when _store_full returned).
    done_at: float = 0.0


def _check_image(image: Path, gate: Callable[[Path], QualityReport] | None) -> _Checked:
    checked = _Checked(problems=integrity_problems(image))
    checked.done_at = time.monotonic()
    if gate is not None and not checked.problems:
        try:
            checked.gate = gate(image)
        except Exception as exc:  # the backup is sound: the flow gates it afterwards
            log.warning("⚠️  The quality gate could not run while the backup was written: %s", exc)
        checked.gate_seconds = time.monotonic() - checked.done_at
    return checked


def _store_full(
    image: Path,
    stored: Path,
    compress: bool,
    verify: bool,
    gate: Callable[[Path], QualityReport] | None,
) -> tuple[Path, str, _Checked]:
    """The stored file, its checksum, and with ``verify`` (a plain file) what
    ``integrity_check`` and then the quality ``gate`` found in it.

    The checks run in a thread while this one hashes the same file: SQLite and OpenSSL
    both leave the GIL, so on two cores they cost little wall time (integrity_check and
    the gate's SQL take about as long as the hash), where checking after the backup read
    and hashed the file a second time and ran the gate after that."""
    if compress:
        return stored, compress_file(image, stored), _Checked()
    if not verify:
        return image, sha3_256_file(image, fsync=True), _Checked()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-check") as pool:
        # In the caller's context: the gate's Data Docs are queued as the run's work.
        checking = pool.submit(contextvars.copy_context().run, _check_image, image, gate)
        checksum = sha3_256_file(image, fsync=True)
        hashed_at = time.monotonic()
        checked = checking.result()
        checked.done_at = max(hashed_at, checked.done_at)
        return image, checksum, checked


def _verdict(problems: list[str]) -> Verification:
    """The sidecar's verification of a backup checked while it was written, as ``dagvault
    verify`` records it (its checksum is of the bytes just written and fsynced)."""
    return Verification(
        status="failed" if problems else "verified",
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        method="integrity_check",
        problems=[f"integrity_check: {'; '.join(problems)}"] if problems else [],
    )


def _store_delta(
    image: Path, stored: Path, plan: DeltaPlan, base: Base, compress: bool
) -> tuple[Path, str]:
    header = {
        "page_count": plan.page_count,
        "parent_checksum": base.info.checksum,
        "image_digest": plan.image_digest,
    }
    with open(stored, "xb") as fh:
        if compress:
            with zstandard.ZstdCompressor(level=3).stream_writer(fh, closefd=False) as out:
                write_delta(out, image, plan.page_size, plan.changed, header)  # type: ignore[arg-type]
        else:
            write_delta(fh, image, plan.page_size, plan.changed, header)
        fh.flush()
        os.fsync(fh.fileno())
    return stored, sha3_256_file(stored)


def _pinned_delta(
    source_path: Path, base: Base, image: Path, busy_timeout: float
) -> tuple[Snapshot | None, DeltaPlan | None]:
    """Plan a delta from the live file itself (see pinned.py) and write its changed pages
    into the sparse ``image``; (None, None) when no state could be pinned, the helper
    failed, or the delta becomes a full backup, which then needs a copy anyway."""
    try:
        with PinnedRead(source_path, busy_timeout) as pin:
            if pin.snapshot is None:
                log.info("Reading the database through a copy: %s", pin.reason)
                return None, None
            progress.report("backup", 0, pin.snapshot.page_count)
            plan = plan_delta(base, pin.digests(), pin.snapshot.page_size)
            if plan.fallback:
                return None, None
            pin.write_pages(image, plan.changed)
            progress.report("backup", pin.snapshot.page_count, pin.snapshot.page_count)
            return pin.snapshot, plan
    except OSError as exc:  # the helper died (killed, out of memory, disk full): copy instead
        discard(image)  # the copy must start from a new file
        log.warning("Reading the database through a copy: the page reader failed: %s", exc)
        return None, None


def write_backup(
    source: sqlite3.Connection,
    source_path: Path,
    destinations: Callable[..., Iterator[Path]],
    *,
    description: str,
    profile: LedgerProfile,
    stage: str = "backup",
    compress: bool = False,
    base: Base | None = None,
    delta_type: str = "Incremental",
    reason: str | None = None,
    full_suffix: str = ".db",
    busy_timeout: float = 30.0,
    key: bytes | None = None,
    held: HeldDir | None = None,
    verify: bool = False,
    gate: GateOptions | None = None,
) -> tuple[Path, BackupInfo]:
    """Snapshot ``source`` and store it as the first free path of
    ``destinations(timestamp, suffix)``: a full backup, or with ``base`` a delta of the
    pages changed since it (a full one, with the reason, when a delta is not worth it).
    With ``key`` the sidecar carries its authentication tag (dagvault.authtag).
    ``verify``: a plain full backup is integrity-checked while it is hashed and the sidecar
    records the verdict (see ``_store_full``); other kinds stay unverified for the caller.
    ``gate`` (with ``verify``): a plain full backup that passes integrity_check is also
    quality-gated meanwhile, and the sidecar carries the verdict (``info.quality``); other
    kinds, and a gate that could not run (a warning), are left for
    ``dagvault.quality.gate_backup``.
    ``held``: the destinations are below its ``io`` path; results and errors name them
    under the directory's own name."""
    shown = held.shown if held is not None else (lambda path: path)
    started = time.monotonic()
    checked = _Checked()  # (a delta's, a compressed backup's: nothing checked here)
    timestamp, created_at = _now()
    first = next(destinations(timestamp, ""))
    image, stored_temp = temp_path(first), temp_path(first.with_name(first.name + ".stored"))
    final = first
    published = False
    try:
        snap, plan = _pinned_delta(source_path, base, image, busy_timeout) if base else (None, None)
        read_in_place = snap is not None
        if snap is None:
            snap = snapshot_to_file(source, image, stage=stage)
            if base is not None:
                plan = plan_delta(base, pages.page_digests(image, snap.page_size), snap.page_size)
        backup_type, digests, extra = "Full", None, {}
        if base is not None and plan is not None:
            digests = plan.digests
            if plan.fallback:
                reason = plan.fallback
            else:
                backup_type = delta_type
                extra = {
                    "parent": base.path.name,
                    "parent_checksum": base.info.checksum,
                    "base_full": base.full.name,
                    "changed_pages": len(plan.changed),
                }
            extra["image_digest"] = plan.image_digest
        if reason:
            events.full_instead_of_delta(reason)
            extra["full_backup_reason"] = reason
        total_tx, total_nodes, warnings = profile.totals(snap.row_counts)
        # The sidecar so far (what the gate reads while the checksum is computed).
        info = BackupInfo(
            timestamp=timestamp,
            backup_path=str(shown(first)),
            database_path=str(source_path.resolve()),
            file_size=0,
            total_transactions=total_tx,
            total_nodes=total_nodes,
            backup_type=backup_type,
            compression_enabled=compress,
            checksum="",
            created_at=created_at,
            metadata=as_strings(
                {
                    "description": description,
                    "sqlite_version": snap.sqlite_version,
                    "page_size": snap.page_size,
                    "page_count": snap.page_count,
                    "source_journal_mode": snap.source_journal_mode,
                    "read_in_place": read_in_place,
                    "source_file_id": file_id(source_path),
                    "duration_seconds": 0,  # (set once it is stored)
                    "hostname": socket.gethostname(),
                    **extra,
                }
            ),
            row_counts=snap.row_counts,
            warnings=warnings,
        )
        if backup_type == "Full":
            so_far, key_so_far = info, (timestamp, created_at, first.name)
            gating = (
                (lambda image: check_new_image(image, so_far, key_so_far, gate)) if gate else None
            )
            stored, checksum, checked = _store_full(image, stored_temp, compress, verify, gating)
        else:
            stored, checksum = _store_delta(image, stored_temp, plan, base, compress)  # type: ignore[arg-type]
        suffix = (full_suffix if backup_type == "Full" else DELTA_SUFFIXES[backup_type]) + (
            SUFFIX if compress else ""
        )
        size = stored.stat().st_size
        for final in destinations(timestamp, suffix):
            try:
                publish(stored, final)
                published = True
                break
            except FileExistsError:
                continue  # two backups in one second: take the next free name
        info = replace(
            info,
            backup_path=str(shown(final)),
            file_size=size,
            checksum=checksum,
            metadata={
                **info.metadata,
                **as_strings(
                    {"duration_seconds": round((checked.done_at or time.monotonic()) - started, 3)}
                ),
            },
        )
        if digests is not None:
            pages.save(final, snap.page_size, digests)  # the next delta starts from here
        problems = checked.problems
        if problems is not None:
            info = info.with_verification(_verdict(problems))
        if checked.gate is not None:
            info = with_verdict(info, replace(checked.gate, subject=str(shown(final))))
        info = sign(info, key)
        write_meta(final, info)
        if problems is not None:
            read_meta(final)  # the sidecar reads back whole, as verify would check it
            if problems:
                events.integrity_failed(shown(final), "; ".join(problems))
            # A verification like any other in the operations journal (and so in
            # dag_storage_operations_total{operation="verify"}), as when it was a step after.
            journal.record(final.parent, "verify", journal.FAILURE if problems else journal.SUCCESS)
        if checked.gate is not None:
            journal_failure(final.parent, checked.gate, checked.gate_seconds)
        return final, info
    except BaseException as exc:
        if published:
            discard(final)  # a data file without its sidecar must not linger
            discard(pages.cache_path(final))
        if isinstance(exc, OSError):
            err = storage_error(exc, "writing backup", str(shown(final)))
            events.backup_failure(err)
            raise err from exc
        if held is not None:
            held.rename_in(exc)
        events.backup_failure(exc)
        raise
    finally:
        for temp in (image, stored_temp):
            for companion in ("", *_SQLITE_COMPANIONS):
                discard(Path(f"{temp}{companion}"))


def create_backup(
    db_path: Path,
    backup_dir: Path,
    *,
    name: str | None = None,
    description: str = "",
    profile: LedgerProfile | None = None,
    busy_timeout: float = 30.0,
    compression: bool = False,
    kind: str = "full",
    key: bytes | None = None,
    verify: bool = False,
    gate: GateOptions | None = None,
) -> BackupInfo:
    """Take a ``kind`` (full, incremental, differential, in any case) backup of ``db_path`` into
    ``backup_dir`` and return its BackupInfo. A delta without a usable base becomes a
    full backup; ``metadata.full_backup_reason`` says why. ``verify``: a plain full backup
    is verified while it is written (``verification`` in the result; a delta or a
    compressed backup stays "unverified": verify it afterwards, it has a chain). ``gate``
    (with ``verify``): a plain full backup is quality-gated meanwhile too (``quality`` in
    the result; None: gate it afterwards with ``dagvault.quality.gate_backup``)."""
    with events.failing_backup():  # every failure, the permission denied of ensure_dir too
        kind = backup_kind(kind)
        name = validate_name(name or db_path.stem or "backup")
        db.require_file(db_path)
        # Resolved once: every file of the backup (data, sidecar, page cache, lock,
        # journal) goes into the directory opened here (see safedir).
        with HeldDir.open(backup_dir, create=True) as held, held.naming_errors():
            info = _back_up_into(
                held,
                db_path,
                name,
                description,
                profile,
                busy_timeout,
                compression,
                kind,
                key,
                verify,
                gate,
            )
    events.backup_created(info.backup_path)
    return info


def _back_up_into(
    held: HeldDir,
    db_path: Path,
    name: str,
    description: str,
    profile: LedgerProfile | None,
    busy_timeout: float,
    compression: bool,
    kind: str,
    key: bytes | None,
    verify: bool,
    gate: GateOptions | None,
) -> BackupInfo:
    directory = ensure_dir(held.io)  # (exists: this checks that it is writable)
    # Backups are as readable as the ledger, never more (see permissions.py).
    with (
        permissions.files_like(db_path),
        journal.operation(directory, "backup"),
        lock.database_and_directory(db_path, directory, "backup"),
    ):
        remove_stale_temp_files(directory)
        base, reason = find_base(directory, db_path, kind) if kind != "full" else (None, None)
        with db.connection(db_path, mode="rw", busy_timeout=busy_timeout) as source:
            _, info = write_backup(
                source,
                db_path,
                numbered_paths(directory, name + "_{ts}{n}"),
                description=description,
                profile=profile or LedgerProfile(),
                compress=compression,
                base=base,
                delta_type="Differential" if kind == "differential" else "Incremental",
                reason=reason,
                busy_timeout=busy_timeout,
                key=key,
                held=held,
                verify=verify,
                gate=gate,
            )
    return info
