"""Choosing the parent of a delta, and planning the delta against it.

Incremental = pages changed since the newest backup of the database in the
directory (any type); differential = since the newest full. Only backups of the
same database file (same resolved path and same inode: a replaced file is
another database), with valid metadata, not failed verification and an intact
chain, qualify. Without one, the caller takes a full backup and records why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dagvault import pages
from dagvault.catalog import list_backups
from dagvault.chain import materialize, resolve_chain
from dagvault.compress import is_compressed
from dagvault.errors import VerificationError
from dagvault.fsio import discard, temp_path
from dagvault.meta import BackupInfo

# A delta that rewrites more than this share of the pages (a VACUUM, a bulk rewrite)
# saves little space and makes every later restore longer: take a full backup.
MAX_CHANGED_SHARE = 0.5
# A delta never extends a chain of this many deltas: it becomes a full backup. A restore reads
# every delta of its chain, and event-triggered incrementals (docs/continuous.md) come every
# half RPO target: 500 deltas is about four hours of them at the default 60 s target, so a
# busy ledger gets a full backup that often even when its scheduled one is a day or a week off.
MAX_DELTAS = 500


@dataclass(frozen=True)
class Base:
    path: Path
    info: BackupInfo
    digests: bytes  # page digests of the base's image
    full: Path  # the full backup at the root of its chain


@dataclass(frozen=True)
class DeltaPlan:
    page_size: int
    page_count: int
    changed: list[int]  # 1-based page numbers
    digests: bytes  # page digests of the new image
    image_digest: str
    fallback: str | None  # why a full backup is taken instead, if it is


def file_id(path: Path) -> str:
    """Device and inode: a database file replaced by another (restore by copy, VACUUM
    INTO + rename) gets a new one, and a delta against its old backups would be wrong."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _trusted(digests: bytes | None, info: BackupInfo) -> bool:
    """Cached digests fit ``info``: the page count, and the image digest where recorded.

    A cache left by another file under this name (or copied from another backup) is
    self-consistent but wrong, and a delta planned against it would miss pages."""
    if digests is None:
        return False
    count = info.page_count
    if count is not None and len(digests) != count * pages.DIGEST_BYTES:
        return False
    expected = info.metadata.get("image_digest")
    return expected is None or pages.image_digest(digests) == expected


def _digests_of(base_path: Path, info: BackupInfo, chain_root: Path, chain: list) -> bytes:  # type: ignore[type-arg]
    page_size = int(info.metadata["page_size"])
    cached = pages.load(base_path, page_size)
    if _trusted(cached, info):
        return cached  # type: ignore[return-value]
    if len(chain) == 1 and not is_compressed(base_path):
        digests = pages.page_digests(base_path, page_size)
    else:
        image = temp_path(base_path.with_name(base_path.name + ".image"))
        try:
            materialize(chain, image)
            digests = pages.page_digests(image, page_size)
        finally:
            discard(image)
    pages.save(base_path, page_size, digests)
    return digests


def find_base(backup_dir: Path, source_path: Path, kind: str) -> tuple[Base | None, str | None]:
    """The parent for a ``kind`` ("incremental"/"differential") backup, or why there is none."""
    database = str(source_path.resolve())
    for entry in list_backups(backup_dir):
        info = entry.info
        if info is None or info.database_path != database:
            continue
        if info.verification.status == "failed":
            continue
        if kind == "differential" and info.backup_type != "Full":
            continue
        if info.metadata.get("source_file_id") not in (None, file_id(source_path)):
            return None, (
                f"the database file was replaced since {entry.path.name} (another inode): "
                "a delta against it would be wrong"
            )
        try:
            chain = resolve_chain(entry.path, info)
            failed = [link.path.name for link in chain if link.info.verification.status == "failed"]
            if failed:
                return None, (
                    f"the chain of the newest usable base {entry.path.name} contains "
                    f"{', '.join(failed)}, which failed verification"
                )
            if kind == "incremental" and len(chain) > MAX_DELTAS:
                return None, (
                    f"the chain of {entry.path.name} has {len(chain) - 1} deltas already, "
                    f"the most one may have ({MAX_DELTAS}): a full backup starts a new one"
                )
            digests = _digests_of(entry.path, info, chain[0].path, chain)
        except VerificationError as exc:
            return None, f"the newest usable base {entry.path.name} is broken: {exc.message}"
        return Base(entry.path, info, digests, chain[0].path), None
    wanted = "full backup" if kind == "differential" else "backup"
    return None, f"no earlier {wanted} of this database in {backup_dir}"


def plan_delta(base: Base, digests: bytes, page_size: int) -> DeltaPlan:
    """Compare the page ``digests`` of a new snapshot with ``base``'s, page by page."""
    page_count = len(digests) // pages.DIGEST_BYTES
    image_digest = pages.image_digest(digests)
    base_page_size = base.info.page_size or 0
    if base_page_size != page_size:
        return DeltaPlan(
            page_size,
            page_count,
            [],
            digests,
            image_digest,
            f"the page size changed from {base_page_size} to {page_size} since {base.path.name}",
        )
    changed = changed_pages(base.digests, digests)
    fallback = None
    if page_count and len(changed) > MAX_CHANGED_SHARE * page_count:
        fallback = (
            f"{len(changed)} of {page_count} pages changed since {base.path.name} (a VACUUM "
            "or a bulk rewrite); a full backup is barely larger and restores faster"
        )
    return DeltaPlan(page_size, page_count, changed, digests, image_digest, fallback)


# Pages compared per block: equal blocks (most of them) cost one C-level comparison.
_BLOCK_PAGES = 16


def changed_pages(old: bytes, new: bytes) -> list[int]:
    """1-based numbers of the pages whose digest in ``new`` differs from ``old`` (pages
    past the end of ``old`` are new, hence changed)."""
    size = pages.DIGEST_BYTES
    old_view, new_view = memoryview(old), memoryview(new)
    block = _BLOCK_PAGES * size
    changed = []
    for start in range(0, len(new), block):
        if new_view[start : start + block] == old_view[start : start + block]:
            continue
        for offset in range(start, min(start + block, len(new)), size):
            if new_view[offset : offset + size] != old_view[offset : offset + size]:
                changed.append(offset // size + 1)
    return changed
