"""Admitting genuine backups taken before a key was configured (``verify --sign-legacy``).

With a key, a backup without an authentication tag is refused (dagvault.authtag): a
forger can delete a tag. The operator who knows a backup is genuine (it predates the
key) admits it once: the backup and every untagged link of its chain are verified
without the key (checksums, chain, integrity, row counts) and then tagged. Signing is a
statement by the operator, not a proof: only sign backups you trust.

A backup at a storage target (format 1 or 2 sidecar there, encrypted or not) is admitted
the same way: its chain is fetched (an encrypted copy must decrypt under the key), verified
like a local backup, and each untagged link's sidecar at the target is replaced by a tagged
one. An encrypted copy is not admitted automatically although AES-GCM proves its bytes
came from the key's holder: its sidecar (name, timestamp, parent) is not covered, so an old
genuine copy could be presented under a newer name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dagvault import authtag, lock
from dagvault.chain import Link, resolve_chain
from dagvault.errors import VerificationError
from dagvault.meta import FORMAT_VERSION, META_SUFFIX, BackupInfo, meta_json, write_meta
from dagvault.storage import Store
from dagvault.storage.offsite.objects import data_object, fetched, find_entry
from dagvault.verify import require_verified


def sign_legacy(backup: Path, key: bytes) -> list[Path]:
    """Tag ``backup`` and each untagged link of its chain after a full verify; return the
    backups signed. A link tagged under another key or with a wrong tag is refused."""
    with lock.hold(backup.parent, "verify --sign-legacy", shared=True):
        signed = []
        for link in _untagged_links(backup, key):
            write_meta(link.path, _signed(link.info, key))
            signed.append(link.path)
    return signed


def sign_legacy_at(store: Store, name: str, key: bytes, staging: Path | None) -> list[str]:
    """``sign_legacy`` for the backup ``name`` at ``store``: return the locations signed."""
    _, by_name = find_entry(store, name)
    signed = []
    with fetched(store, name, key, staging, by_name) as local:
        for link in _untagged_links(local, key):
            remote = by_name[link.path.name]
            assert remote.info is not None
            # The tag is over the sidecar as fetched (plaintext size and checksum: what a
            # restore reads back), stored in the target's sidecar of the stored object.
            tag = _signed(link.info, key).auth_tag
            stored = replace(remote.info, format_version=FORMAT_VERSION, auth_tag=tag)
            encrypted = remote.info.encryption is not None
            store.write(data_object(link.path.name, encrypted) + META_SUFFIX, meta_json(stored))
            signed.append(remote.where)
    return signed


def _untagged_links(backup: Path, key: bytes) -> list[Link]:
    """The links of ``backup``'s chain that carry no tag, once the whole chain verified
    without the key and its tagged links authenticate under it."""
    report = require_verified(
        backup,
        "not signing it",
        "Only an intact backup can be admitted; pick another (`dagvault list`).",
    )
    assert report.info is not None
    chain = resolve_chain(backup, report.info)
    tagged = [link for link in chain if link.info.auth_tag is not None]
    problems = authtag.chain_problems(tagged, key)
    if problems:
        raise VerificationError(
            f"Backup {backup} has links tagged, but not validly under this key: "
            + "; ".join(problems),
            "Do not restore it; use the key it was written with, or another backup.",
            problems=problems,
        )
    return [link for link in chain if link.info.auth_tag is None]


def _signed(info: BackupInfo, key: bytes) -> BackupInfo:
    return authtag.sign(replace(info, format_version=FORMAT_VERSION), key)
