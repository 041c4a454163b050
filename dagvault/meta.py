"""``BackupInfo`` and its ``.meta`` JSON sidecar (format version 3).

The sidecar (docs/backup-format.md) holds BackupInfo's fields at the top level, plus
``format_version``, ``checksum_algorithm``, ``created_at``, ``row_counts``, ``warnings``,
``encryption`` (at an encrypted storage target), ``verification`` and, once a
data-quality gate ran, ``quality`` (passed, checked_at, expectations, warnings, data_docs;
absent or null in older sidecars).
``metadata`` is BackupInfo's map of strings (description, sqlite_version,
page_size, page_count, duration_seconds, …; numbers in decimal, see meta_values).
Format 1 and 2 sidecars (typed values and row_counts/warnings/encryption inside
``metadata``) still read: they are upgraded to this layout in memory.

``meta_checksum`` is the SHA3-256 of the sidecar's other fields in canonical JSON: any
edit of a field the data cannot vouch for (a timestamp, a parent's name, a row count…)
makes the sidecar invalid, so a hand-edited or bit-rotted sidecar is never trusted.
It is unkeyed: anyone can recompute it, so it catches damage, not forgery. ``auth_tag``
(format 3, when a key is configured) is the keyed tag that does: see dagvault.authtag.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dagvault import meta_values
from dagvault.errors import EditedMetadata, VerificationError
from dagvault.fsio import write_atomic

# 2 added meta_checksum; 3 made metadata a map of strings (BackupInfo's documented type), moved
# row_counts, warnings and encryption out of it, and added auth_tag (dagvault.authtag).
# Versions 1 and 2 still read.
FORMAT_VERSION = 3
META_SUFFIX = ".meta"
BACKUP_TYPES = ("Full", "Incremental", "Differential")
_TAG_FIELDS = ("algorithm", "key_id", "tag")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

VerificationStatus = Literal["unverified", "verified", "failed"]


@dataclass(frozen=True)
class Verification:
    status: VerificationStatus = "unverified"
    checked_at: str | None = None
    method: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SpecBackupInfo:
    """The backup spec's BackupInfo, field for field: what every front end documents (the
    typed entry of `list --json` and GET /backup/list derives from it)."""

    timestamp: int
    backup_path: str
    database_path: str
    file_size: int
    total_transactions: int
    total_nodes: int
    backup_type: str
    compression_enabled: bool
    checksum: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class BackupInfo(SpecBackupInfo):
    created_at: str
    checksum_algorithm: str = "sha3-256"
    format_version: int = FORMAT_VERSION
    verification: Verification = field(default_factory=Verification)
    quality: dict[str, Any] | None = None
    row_counts: dict[str, int] = field(default_factory=dict)  # every table of the snapshot
    warnings: list[str] = field(default_factory=list)
    # At an encrypted storage target: algorithm, key_id, plaintext_size, plaintext_checksum.
    encryption: dict[str, Any] | None = None
    # The keyed tag of dagvault.authtag (algorithm, key_id, tag); None when no key was set.
    auth_tag: dict[str, str] | None = None

    def _number(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return None if value is None else int(value)

    @property
    def page_size(self) -> int | None:
        return self._number("page_size")

    @property
    def page_count(self) -> int | None:
        return self._number("page_count")

    @property
    def changed_pages(self) -> int | None:
        return self._number("changed_pages")

    @property
    def duration_seconds(self) -> float:
        return float(self.metadata.get("duration_seconds", "0"))

    @property
    def read_in_place(self) -> bool:
        return meta_values.flag(self.metadata.get("read_in_place", "false"))

    @property
    def verified(self) -> bool:
        return self.verification.status == "verified"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_verification(self, verification: Verification) -> BackupInfo:
        return replace(self, verification=verification)

    def with_quality(self, quality: dict[str, Any], verification: Verification) -> BackupInfo:
        return replace(self, quality=quality, verification=verification)


EDITED = (
    "meta_checksum is missing or does not match the other fields "
    "(the metadata was edited or damaged after it was written)"
)


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
        for key in ("file_size", "total_transactions", "total_nodes"):
            if document[key] < 0:
                problems.append(f"field {key!r} is negative")
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
        tag = document.get("auth_tag")
        if tag is not None and not (
            isinstance(tag, dict) and all(isinstance(tag.get(k), str) for k in _TAG_FIELDS)
        ):
            problems.append("field 'auth_tag' is not an authentication tag record")
        signed = version >= 2 or "meta_checksum" in document
        if signed and document.get("meta_checksum") != sidecar_checksum(document):
            problems.append(EDITED)
    if problems == [EDITED] and "meta_checksum" in document:
        # Every field reads well and one was changed: verify_file can tell which.
        if document["format_version"] < 3:
            document = meta_values.upgrade(document)
        raise EditedMetadata(
            f"{backup}: invalid metadata in {name}: {EDITED}",
            "Do not restore this backup; take a new one with `dagvault backup`.",
            document=document,
        )
    if not problems:
        if document["format_version"] < 3:  # checked as written; read in today's layout
            document = meta_values.upgrade(document)
        problems = _layout_problems(document)
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
    # In memory a sidecar of any version has today's layout, and is written back as such.
    known = set(BackupInfo.__dataclass_fields__) - {"verification", "format_version"}
    return BackupInfo(
        **{k: v for k, v in document.items() if k in known}, verification=verification
    )


def _layout_problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with the format 3 fields: the metadata strings and the moved fields."""
    problems = meta_values.problems_in(document["metadata"])
    counts = document.get("row_counts", {})
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
    ):
        problems.append("field 'row_counts' is not a map of table names to counts")
    warnings = document.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        problems.append("field 'warnings' is not a list of strings")
    encryption = document.get("encryption")
    if encryption is not None and not isinstance(encryption, dict):
        problems.append("field 'encryption' is not an object")
    return problems
