"""The fast restore path (issue #18's RTO) keeps every guarantee: deltas applied page-once
give exactly the image replaying them gives; a tampered page in any link of a chain still
refuses the restore; a restore into a missing database publishes the checked image itself
and never replaces a file that appeared meanwhile; a compressed full is hashed as it is
decompressed.

On a ledger unlike the sample (8 KiB pages, 20 KB blobs, WITHOUT ROWID tables)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import (
    ODD_LEDGER_CONFIG,
    add_odd_transactions,
    content_digest,
    integrity,
    make_odd_ledger,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dagvault.backup import create_backup
from dagvault.compress import compress_file, decompress_file
from dagvault.delta import apply_deltas, write_delta
from dagvault.errors import DamagedCompressedData, VerificationError
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, read_meta
from dagvault.restore import restore_backup
from dagvault.restore_new import publish_image
from dagvault.verify import verify_file

PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
PAGE = 512


# --------------------------------------------------------------------- page-once


def _image(pages: list[int]) -> bytes:
    """An image whose page n holds the byte ``pages[n]`` (few values: pages repeat)."""
    return b"".join(bytes([value]) * PAGE for value in pages)


def _delta(path: Path, scratch: Path, old: list[int], new: list[int]) -> Path:
    """A delta from ``old`` to ``new`` as a backup writes one: the pages that differ and
    every page past the old end (``dagvault.base.changed_pages``)."""
    scratch.write_bytes(_image(new))
    changed = [n + 1 for n, value in enumerate(new) if n >= len(old) or old[n] != value]
    with open(path, "wb") as out:
        write_delta(out, scratch, PAGE, changed, {"page_count": len(new)})
    return path


images = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=24), min_size=2, max_size=7)


@settings(max_examples=60, deadline=None)
@given(images)
def test_deltas_applied_page_once_give_the_image_of_replaying_them(
    tmp_path_factory: pytest.TempPathFactory, states: list[list[int]]
) -> None:
    """Images that grow, shrink (a truncating delta) and grow again past the cut."""
    work = tmp_path_factory.mktemp("page-once")
    deltas = [
        _delta(work / f"{n}.delta", work / "scratch", states[n - 1], states[n])
        for n in range(1, len(states))
    ]
    once, replayed = work / "once.img", work / "replayed.img"
    once.write_bytes(_image(states[0]))
    replayed.write_bytes(_image(states[0]))

    apply_deltas(deltas, once)
    for delta in deltas:
        apply_deltas([delta], replayed)

    assert once.read_bytes() == replayed.read_bytes() == _image(states[-1])


# --------------------------------------------------------------------- a real chain


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[BackupInfo], dict[str, str]]:
    """An odd ledger, a full backup and three incrementals; the ledger's content at the
    newest one. Built once: each test gets its own copy (``chain``)."""
    root = tmp_path_factory.mktemp("chain")
    (root / "live").mkdir()
    db = make_odd_ledger(root / "live" / "node.db", 20, blob_size=20_000)
    backups = root / "backups"
    taken = [create_backup(db, backups, kind="full", profile=PROFILE)]
    for _ in range(3):
        add_odd_transactions(db, 4, blob_size=20_000)
        taken.append(create_backup(db, backups, kind="incremental", profile=PROFILE))
    assert [i.backup_type for i in taken] == ["Full", *["Incremental"] * 3]
    return db, taken, content_digest(db)


@pytest.fixture
def chain(
    built: tuple[Path, list[BackupInfo], dict[str, str]], tmp_path: Path
) -> tuple[Path, list[Path], dict[str, str]]:
    """A copy of the ledger (through SQLite) and of its backups: (ledger, [full, delta,
    delta, delta], content at the newest)."""
    db, taken, at_newest = built
    (tmp_path / "live").mkdir()
    copy = tmp_path / "live" / "node.db"
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(copy)) as dest:
        source.backup(dest)
    backups = Path(shutil.copytree(Path(taken[0].backup_path).parent, tmp_path / "backups"))
    return copy, [backups / Path(i.backup_path).name for i in taken], at_newest


def test_a_chain_restores_into_a_missing_database_as_the_ledger_was(
    chain: tuple[Path, list[Path], dict[str, str]], tmp_path: Path
) -> None:
    _, links, at_newest = chain
    target = tmp_path / "new" / "node.db"
    os.chmod(links[-1], 0o640)  # the published file takes the backup's bits

    result = restore_backup(links[-1], target, profile=PROFILE)

    assert result.success and result.pre_restore_backup is None
    assert content_digest(target) == at_newest
    assert integrity(target) == ["ok"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir() if "restore-image" in p.name) == []


@pytest.mark.parametrize("which", [0, -1])
def test_an_unverified_restore_into_a_missing_database_is_post_checked_then_published(
    chain: tuple[Path, list[Path], dict[str, str]], tmp_path: Path, which: int
) -> None:
    """--no-verify: the full is copied (the chain rebuilt) into the image, which gets the
    post-check (quick_check, row counts) before it is linked into place."""
    _, links, at_newest = chain
    target = tmp_path / "new.db"

    result = restore_backup(links[which], target, profile=PROFILE, verify=False)

    assert "backup was not verified before the restore (--no-verify)" in result.warnings
    assert integrity(target) == ["ok"]
    if which == -1:
        assert content_digest(target) == at_newest


@pytest.mark.parametrize("link", [0, 1, 2, 3, "full alone"])
@pytest.mark.parametrize("into", ["missing", "live"])
def test_a_tampered_page_in_any_link_refuses_the_restore(
    chain: tuple[Path, list[Path], dict[str, str]], tmp_path: Path, link: int | str, into: str
) -> None:
    """A byte changed in a page the newest delta rewrites (so the rebuilt image would
    still match its digest), in the full or in any delta: refused, nothing written. The
    full restored alone is copied and hashed from its copy (into a new database)."""
    db, links, _ = chain
    victim = links[0] if link == "full alone" else links[int(link)]
    restored = links[0] if link == "full alone" else links[-1]
    newest = links[-1]
    page_size = int(read_meta(newest).metadata["page_size"])
    if victim == links[0]:  # the full: a page the newest delta holds too
        number = _first_record(newest)
        offset = (number - 1) * page_size + page_size // 2
    else:
        offset = _first_record_offset(victim) + 4 + page_size // 2
    data = bytearray(victim.read_bytes())
    data[offset] ^= 0xFF
    victim.write_bytes(bytes(data))
    target = db if into == "live" else tmp_path / "new.db"
    before = content_digest(db)

    with pytest.raises(VerificationError, match="verification"):
        restore_backup(restored, target, profile=PROFILE)

    assert content_digest(db) == before
    assert not (tmp_path / "new.db").exists()
    leftovers = [p.name for p in target.parent.iterdir() if "restore-image" in p.name]
    assert leftovers == []


def _first_record_offset(delta: Path) -> int:
    raw = delta.read_bytes()
    return 12 + int.from_bytes(raw[8:12], "little")


def _first_record(delta: Path) -> int:
    at = _first_record_offset(delta)
    return int.from_bytes(delta.read_bytes()[at : at + 4], "little")


# --------------------------------------------------------------------- publishing


def test_a_database_that_appeared_is_never_replaced(tmp_path: Path) -> None:
    image, db = tmp_path / ".node.db.restore-image.1.tmp", tmp_path / "node.db"
    image.write_bytes(b"restored")
    db.write_bytes(b"appeared meanwhile")

    assert publish_image(image, db, None) is False

    assert db.read_bytes() == b"appeared meanwhile"
    assert image.read_bytes() == b"restored"  # left for the ordinary copy into ``db``


@pytest.mark.parametrize("side", ["-wal", "-journal"])
def test_a_left_over_wal_or_journal_keeps_the_image_unpublished(tmp_path: Path, side: str) -> None:
    """SQLite would apply them to whatever file appears under the name."""
    image, db = tmp_path / "image", tmp_path / "node.db"
    image.write_bytes(b"restored")
    Path(f"{db}{side}").write_bytes(b"stale")

    assert publish_image(image, db, None) is False
    assert not db.exists()


def test_a_restore_into_a_missing_database_with_a_stale_wal_copies_the_usual_way(
    chain: tuple[Path, list[Path], dict[str, str]], tmp_path: Path
) -> None:
    _, links, at_newest = chain
    target = tmp_path / "new.db"
    Path(f"{target}-journal").write_bytes(b"")  # an empty journal: not hot, nothing to roll back

    restore_backup(links[-1], target, profile=PROFILE)

    assert content_digest(target) == at_newest


# --------------------------------------------------------------------- decompressing


def test_decompressing_hashes_the_compressed_bytes_and_refuses_a_truncated_frame(
    tmp_path: Path,
) -> None:
    plain = random.Random(8).randbytes(5 * 1024 * 1024) * 2
    (tmp_path / "backup.db").write_bytes(plain)
    packed = tmp_path / "backup.db.zst"
    compress_file(tmp_path / "backup.db", packed)

    checksum = decompress_file(packed, tmp_path / "image")

    assert (tmp_path / "image").read_bytes() == plain
    assert checksum == hashlib.sha3_256(packed.read_bytes()).hexdigest()
    shutil.copyfile(packed, tmp_path / "cut.db.zst")
    os.truncate(tmp_path / "cut.db.zst", packed.stat().st_size - 100)
    with pytest.raises(VerificationError, match="truncated"):
        decompress_file(tmp_path / "cut.db.zst", tmp_path / "image2")


def test_damage_zstd_notices_is_named_a_checksum_mismatch(tmp_path: Path) -> None:
    """zstd's frame checksum may notice a flipped bit before the SHA3 does: the report still
    says the file is not what was written (the whole file is hashed), as for a plain one."""
    ledger = tmp_path / "ledger.db"
    with closing(sqlite3.connect(ledger)) as conn, conn:
        conn.execute("CREATE TABLE t (v BLOB)")
        rows = [(f"row {i} of the ledger, amount {i * 7919 % 1000}; " * 40,) for i in range(300)]
        conn.executemany("INSERT INTO t VALUES (?)", rows)
    backup = Path(create_backup(ledger, tmp_path / "backups", compression=True).backup_path)
    pristine = backup.read_bytes()
    for offset in range(len(pristine) // 2, len(pristine)):  # the first flip zstd notices
        data = bytearray(pristine)
        data[offset] ^= 0x10
        backup.write_bytes(data)
        try:
            decompress_file(backup, tmp_path / f"image-{offset}")
        except DamagedCompressedData as damaged:
            assert damaged.read_as == hashlib.sha3_256(data).hexdigest()
            break
    else:
        pytest.fail("no flipped bit that zstd notices")

    report = verify_file(backup)

    assert not report.ok
    assert report.checks["checksum"].startswith("failed")
    assert any("SHA3-256 is " in problem for problem in report.problems)
