"""Keyed authentication of backups: an HMAC-SHA3-256 tag in every sidecar once a key is set.

``checksum`` and ``meta_checksum`` are unkeyed SHA3-256 digests: they catch damage, but
whoever can write the backup directory can recompute them after changing the data.
With a key configured (``dagvault keygen``, DAGVAULT_ENCRYPTION_KEY_FILE or
DAGVAULT_ENCRYPTION_KEY) every backup's sidecar gets

    auth_tag = {"algorithm": "hmac-sha3-256-v1", "key_id": <hex>, "tag": <hex>}
    tag      = HMAC-SHA3-256(HKDF-SHA3-256(master key, info=MAC_LABEL),
                             DOMAIN | name | 0 | canonical JSON of the sidecar)

The canonical JSON covers every field except ``meta_checksum``, ``auth_tag`` and the two
records verify and the quality gate rewrite later (``verification``, ``quality``: they
are re-derived by the next check, never trusted to skip one); ``backup_path`` is
reduced to the file name, so the tag survives a copy to a storage target and back, but
a data file renamed or swapped in for another backup's fails. The data itself is bound
through ``checksum`` (its SHA3-256), which verify compares with the file; a delta's
``parent_checksum`` and ``image_digest`` bind its chain.

Downgrade: with a key configured, a sidecar without a tag is refused like a wrong tag
(a forger can delete a tag as easily as change one). Genuine backups taken before the
key was set are admitted explicitly with ``dagvault verify --sign-legacy``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dagvault.chain import Link, check_files, resolve_chain
from dagvault.crypto import key_id
from dagvault.errors import VerificationError
from dagvault.meta import BackupInfo

ALGORITHM = "hmac-sha3-256-v1"
# Separates the MAC key from the encryption key derived from the same master key.
MAC_LABEL = b"dagvault backup authentication v1"
_DOMAIN = b"dagvault backup tag v1\0"
_UNSIGNED = ("meta_checksum", "auth_tag", "verification", "quality")
UNAUTHENTICATED = (
    "backup not authenticated (no key configured): its checksums prove it is intact, not "
    "that dagvault wrote it; configure a key (`dagvault keygen`, see docs/security.md)"
)
# Every problem below names it, so callers can give LEGACY_HINT as the remedy.
MARKER = "authentication tag"
LEGACY_REMEDY = (
    "If it is a genuine backup taken before the key was configured, admit it (and its "
    "chain) once with `dagvault verify --sign-legacy BACKUP`; otherwise do not restore it "
    "and investigate who wrote it."
)
LEGACY_HINT = "The live database was not touched. " + LEGACY_REMEDY


def mac_key(master: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA3_256(), length=32, salt=None, info=MAC_LABEL).derive(master)


def _message(info: BackupInfo) -> bytes:
    document = {k: v for k, v in info.to_json().items() if k not in _UNSIGNED}
    name = Path(info.backup_path).name
    document["backup_path"] = name
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _DOMAIN + name.encode() + b"\0" + canonical.encode()


def _tag(info: BackupInfo, key: bytes) -> str:
    return hmac.new(mac_key(key), _message(info), hashlib.sha3_256).hexdigest()


def sign(info: BackupInfo, key: bytes | None) -> BackupInfo:
    """``info`` with its tag under ``key`` (unchanged without a key)."""
    if key is None:
        return info
    tag = {"algorithm": ALGORITHM, "key_id": key_id(key).hex(), "tag": _tag(info, key)}
    return replace(info, auth_tag=tag)


def _same(stored: str, expected: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a forged sidecar may hold any text.
    return hmac.compare_digest(stored.encode(), expected.encode())


def problem(info: BackupInfo, key: bytes) -> str | None:
    """Why ``info``'s sidecar is not authenticated under ``key``; None when it is."""
    tag = info.auth_tag
    name = Path(info.backup_path).name
    if tag is None:
        return (
            f"{name} carries no authentication tag, and a key is configured: it was not "
            "written by dagvault with this key, or its tag was removed"
        )
    if tag.get("algorithm") != ALGORITHM:
        return f"{name}: authentication tag of unknown algorithm {tag.get('algorithm')!r}"
    if not _same(tag.get("key_id", ""), key_id(key).hex()):
        return f"{name}: authentication tag made with another key than the one configured"
    if not _same(tag.get("tag", ""), _tag(info, key)):
        return (
            f"{name}: authentication tag does not match: the backup's metadata was changed "
            "after dagvault wrote it (forged or tampered)"
        )
    return None


def chain_problems(chain: list[Link], key: bytes) -> list[str]:
    return [p for link in chain if (p := problem(link.info, key)) is not None]


def authenticate(backup: Path, info: BackupInfo, key: bytes) -> None:
    """Every link of ``backup``'s chain carries a valid tag and its file matches its
    checksum; VerificationError otherwise (for a restore that skips the full verify)."""
    chain = resolve_chain(backup, info)
    problems = chain_problems(chain, key) or check_files(chain)
    if problems:
        raise VerificationError(
            f"Backup {backup} fails authentication; refusing to restore it: " + "; ".join(problems),
            LEGACY_HINT,
            problems=problems,
        )
