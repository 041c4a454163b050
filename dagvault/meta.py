"""``BackupInfo`` and its ``.meta`` JSON sidecar (format version 1).

The sidecar holds the description's BackupInfo fields at the top level, plus
``format_version``, ``checksum_algorithm``, ``created_at``, ``verification`` and, once a
data-quality gate ran, ``quality`` (passed, checked_at, expectations, warnings, data_docs;
absent or null in older sidecars).
``metadata`` is a JSON object (description, row_counts, sqlite_version, page_size,
page_count, duration_seconds, …); the description's map of strings is widened to
JSON values so that row counts stay numbers.

``meta_checksum`` is the SHA3-256 of the sidecar's other fields in canonical JSON: any
edit of a field the data cannot vouch for (a timestamp, a parent's name, a row count…)
makes the sidecar invalid, so a hand-edited or bit-rotted sidecar is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dagvault.errors import VerificationError
from dagvault.fsio import write_atomic

FORMAT_VERSION = 2  # 2 added meta_checksum; version 1 sidecars (without it) still read
META_SUFFIX = ".meta"
BACKUP_TYPES = ("Full", "Incremental", "Differential")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

VerificationStatus = Literal["unverified", "verified", "failed"]


@dataclass(frozen=True)
class Verification:
    status: VerificationStatus = "unverified"
    checked_at: str | None = None
    method: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BackupInfo:
    timestamp: int
    backup_path: str
    database_path: str
    file_size: int
    total_transactions: int
    total_nodes: int
    backup_type: str
    compression_enabled: bool
    checksum: str
    metadata: dict[str, Any]
    created_at: str
    checksum_algorithm: str = "sha3-256"
    format_version: int = FORMAT_VERSION
    verification: Verification = field(default_factory=Verification)
    quality: dict[str, Any] | None = None

    @property
    def row_counts(self) -> dict[str, int]:
        return dict(self.metadata.get("row_counts", {}))

    @property
    def verified(self) -> bool:
        return self.verification.status == "verified"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_verification(self, verification: Verification) -> BackupInfo:
        return replace(self, verification=verification)

    def with_quality(self, quality: dict[str, Any], verification: Verification) -> BackupInfo:
        return replace(self, quality=quality, verification=verification)


def meta_path(backup: Path) -> Path:
    return backup.with_name(backup.name + META_SUFFIX)


def sidecar_checksum(document: dict[str, Any]) -> str:
    fields = {k: v for k, v in document.items() if k != "meta_checksum"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha3_256(canonical.encode()).hexdigest()


def write_meta(backup: Path, info: BackupInfo) -> None:
    write_atomic(meta_path(backup), meta_json(info), times_of=backup)


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "timestamp": int,
    "backup_path": str,
    "database_path": str,
    "file_size": int,
    "total_transactions": int,
    "total_nodes": int,
    "backup_type": str,
    "compression_enabled": bool,
    "checksum": str,
    "metadata": dict,
    "created_at": str,
}


def meta_json(info: BackupInfo) -> bytes:
    document = info.to_json()
    document["meta_checksum"] = sidecar_checksum(document)
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def read_meta(backup: Path) -> BackupInfo:
    """Load and validate the sidecar of ``backup``; VerificationError says what is wrong."""
    path = meta_path(backup)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise VerificationError(
            f"{backup}: metadata file {path.name} is missing",
            "This file is not a complete dagvault backup; do not restore it. "
            "Take a new backup with `dagvault backup`.",
        ) from None
    except OSError as exc:
        raise VerificationError(
            f"{backup}: metadata file {path.name} is unreadable: {exc}"
        ) from None
    return parse_meta(text, str(backup), path.name)


def parse_meta(text: bytes, backup: str, name: str) -> BackupInfo:
    """Validate the sidecar ``name`` of ``backup`` (a path or URL) from its bytes."""
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{backup}: metadata file {name} is unreadable: {exc}") from None
    if not isinstance(document, dict):
        raise VerificationError(f"{backup}: metadata file {name} is not a JSON object")
    problems = []
    for key, kind in _REQUIRED.items():
        value = document.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"field {key!r} is missing or not of type {kind.__name__}")
    if not problems:
        version = document["format_version"]
        if version > FORMAT_VERSION:
            problems.append(
                f"format_version {version} is newer than this dagvault "
                f"understands ({FORMAT_VERSION}); upgrade dagvault"
            )
        elif version < 1:
            problems.append(f"format_version {version} is not a dagvault format version")
        if not _HEX64.fullmatch(document["checksum"]):
            problems.append("field 'checksum' is not a SHA3-256 hex digest")
        if document["backup_type"] not in BACKUP_TYPES:
            problems.append(f"field 'backup_type' is {document['backup_type']!r}")
        if document.get("checksum_algorithm", "sha3-256") != "sha3-256":
            problems.append(f"unsupported checksum_algorithm {document['checksum_algorithm']!r}")
        for name in ("file_size", "total_transactions", "total_nodes"):
            if document[name] < 0:
                problems.append(f"field {name!r} is negative")
        counts = document["metadata"].get("row_counts", {})
        if not isinstance(counts, dict) or not all(
            isinstance(v, int) and v >= 0 for v in counts.values()
        ):
            problems.append("metadata.row_counts is not a map of table names to counts")
        raw = document.get("verification") or {}
        if (
            not isinstance(raw, dict)
            or raw.get("status", "unverified") not in ("unverified", "verified", "failed")
            or not isinstance(raw.get("problems", []), list)
        ):
            problems.append("field 'verification' is not a verification record")
        quality = document.get("quality")
        if quality is not None and (
            not isinstance(quality, dict)
            or not isinstance(quality.get("passed"), bool)
            or not isinstance(quality.get("expectations", []), list)
        ):
            problems.append("field 'quality' is not a data-quality record")
        signed = version >= 2 or "meta_checksum" in document
        if signed and document.get("meta_checksum") != sidecar_checksum(document):
            problems.append(
                "meta_checksum is missing or does not match the other fields "
                "(the metadata was edited or damaged after it was written)"
            )
    if problems:
        raise VerificationError(
            f"{backup}: invalid metadata in {name}: {'; '.join(problems)}",
            "Do not restore this backup; take a new one with `dagvault backup`.",
            problems=problems,
        )
    raw_verification = document.get("verification") or {}
    verification = Verification(
        status=raw_verification.get("status", "unverified"),
        checked_at=raw_verification.get("checked_at"),
        method=raw_verification.get("method"),
        problems=list(raw_verification.get("problems", [])),
    )
    known = {f for f in BackupInfo.__dataclass_fields__ if f != "verification"}
    return BackupInfo(
        **{k: v for k, v in document.items() if k in known}, verification=verification
    )
