"""Backup chains: a full backup and the deltas that lead from it to a given backup.

``resolve_chain`` follows ``metadata.parent`` links and checks each one (the parent
exists, has valid metadata, and its checksum is the one the child was taken
against). ``materialize`` rebuilds the image of any backup into a plain SQLite
file and proves it: a full backup's bytes match its checksum, a delta's rebuilt
image matches its ``image_digest``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from dagvault import pages
from dagvault.checksum import sha3_256_file
from dagvault.compress import decompress_file, is_compressed
from dagvault.delta import apply_deltas
from dagvault.errors import VerificationError
from dagvault.meta import BackupInfo, read_meta

MAX_CHAIN = 10_000  # a cycle of parent links must not loop forever


@dataclass(frozen=True)
class Link:
    path: Path
    info: BackupInfo


def resolve_chain(backup: Path, info: BackupInfo | None = None) -> list[Link]:
    """[full, delta, …, backup]; VerificationError names the first broken link."""
    chain = [Link(backup, info or read_meta(backup))]
    while chain[-1].info.backup_type != "Full":
        child = chain[-1]
        parent_name = child.info.metadata.get("parent")
        if not isinstance(parent_name, str) or not parent_name or "/" in parent_name:
            raise VerificationError(f"{child.path}: metadata names no valid parent backup")
        parent = child.path.with_name(parent_name)
        if not parent.is_file():
            raise VerificationError(
                f"{child.path}: broken chain: parent {parent.name} is missing",
                "Restore an older backup whose chain is complete, or take a new full backup.",
            )
        try:
            parent_info = read_meta(parent)
        except VerificationError as exc:
            raise VerificationError(
                f"{child.path}: broken chain at {parent.name}: {exc.message}"
            ) from None
        if parent_info.checksum != child.info.metadata.get("parent_checksum"):
            raise VerificationError(
                f"{child.path}: broken chain: {parent.name} is not the backup this delta was "
                "taken against (wrong parent checksum)",
                "Restore an older backup whose chain is complete, or take a new full backup.",
            )
        chain.append(Link(parent, parent_info))
        if len(chain) > MAX_CHAIN:
            raise VerificationError(
                f"{backup}: chain of parent links does not end in a full backup"
            )
    chain.reverse()
    return chain


def check_files(chain: list[Link]) -> list[str]:
    """Size and SHA3-256 of every file of the chain against its metadata."""
    problems = []
    for link in chain:
        size = link.path.stat().st_size
        if size != link.info.file_size:
            problems.append(f"{link.path.name}: expected {link.info.file_size} bytes, found {size}")
        elif sha3_256_file(link.path) != link.info.checksum:
            problems.append(f"{link.path.name}: SHA3-256 does not match its metadata")
    return problems


def materialize(chain: list[Link], dest: Path) -> None:
    """Rebuild the image of ``chain[-1]`` into the new file ``dest`` and prove it.

    ``dest`` is a scratch file, not fsynced here: a restore copies it into the live
    database through SQLite (which syncs what it writes), or syncs it before publishing it
    as a new database (``dagvault.restore_new``)."""
    copy_full(chain[0], dest)
    apply_chain(chain, dest)


def copy_full(full: Link, dest: Path) -> str | None:
    """Copy the full backup ``full`` into the new file ``dest``: a plain one by the kernel
    (None returned), a compressed one decompressed and hashed as it is read (its SHA3-256
    returned, for the caller to compare: one read of it)."""
    if is_compressed(full.path):
        return decompress_file(full.path, dest)
    shutil.copyfile(full.path, dest)
    return None


def apply_chain(chain: list[Link], image: Path) -> None:
    """Apply the deltas of ``chain`` to ``image`` (its full's copy) and prove the result
    against the image digest of ``chain[-1]``."""
    apply_deltas([link.path for link in chain[1:]], image)
    target = chain[-1].info
    if len(chain) > 1:
        digest = pages.image_digest(pages.page_digests(image, int(target.metadata["page_size"])))
        if digest != target.metadata.get("image_digest"):
            raise VerificationError(
                f"{chain[-1].path}: the rebuilt image does not match the image digest in its "
                "metadata",
                "Restore an older backup, or take a new full backup.",
            )
