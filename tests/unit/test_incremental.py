"""Incremental and differential backups on real SQLite files: chains, fallbacks, faults.

Deltas are checked against an independent reading of the documented format (records,
trailer, image digest = SHA3-256 of the BLAKE2b-256 page digests) rather than through
dagvault's own reader, and every restore is compared with the content digest the live
database had when the backup was taken.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_incremental.py."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import struct
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    content_digest,
    copy_of,
    integrity,
    make_database,
    query,
    read_meta_json,
    sha3_file,
    write_meta_json,
)
from _shared.incremental import execute, path_of, plain_bytes, restored, take
from hypothesis import given, settings
from hypothesis import strategies as st

from dagvault import base, pages
from dagvault.base import MAX_CHANGED_SHARE, changed_pages
from dagvault.catalog import list_backups
from dagvault.errors import VerificationError
from dagvault.meta import BackupInfo
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_backup, verify_file

MEDIUM_TRANSACTIONS = 5_000  # about 25 MB


def parse_delta(path: Path) -> tuple[dict[str, Any], dict[int, bytes]]:
    """The documented delta format, read without dagvault.delta."""
    raw = plain_bytes(path)
    assert raw[:8] == b"DVDELTA1"
    (length,) = struct.unpack_from("<I", raw, 8)
    header = json.loads(raw[12 : 12 + length])
    page_size = header["page_size"]
    position = 12 + length
    records: dict[int, bytes] = {}
    previous = 0
    for _ in range(header["changed_pages"]):
        (number,) = struct.unpack_from("<I", raw, position)
        assert number > previous, "page numbers must ascend"
        previous = number
        records[number] = raw[position + 4 : position + 4 + page_size]
        assert len(records[number]) == page_size
        position += 4 + page_size
    assert raw[position:] == b"DVDEND01" + struct.pack("<I", header["changed_pages"])
    return header, records


def apply_records(image: bytes, header: dict[str, Any], records: dict[int, bytes]) -> bytes:
    size = header["page_size"]
    out = bytearray(image)
    for number, page in records.items():
        end = number * size
        if len(out) < end:
            out.extend(bytes(end - len(out)))
        out[end - size : end] = page
    del out[header["page_count"] * size :]
    return bytes(out)


def split_pages(image: bytes, page_size: int) -> list[bytes]:
    return [image[i : i + page_size] for i in range(0, len(image), page_size)]


def independent_image_digest(image: bytes, page_size: int) -> str:
    digests = b"".join(
        hashlib.blake2b(page, digest_size=32).digest() for page in split_pages(image, page_size)
    )
    return hashlib.sha3_256(digests).hexdigest()


def image_of(backup: Path) -> bytes:
    """The database image a backup stands for, rebuilt from its chain without dagvault."""
    meta = read_meta_json(backup)
    if meta["backup_type"] == "Full":
        return plain_bytes(backup)
    parent = image_of(backup.with_name(meta["metadata"]["parent"]))
    return apply_records(parent, *parse_delta(backup))


def digest_of_image(image: bytes, scratch: Path) -> dict[str, str]:
    scratch.write_bytes(image)
    try:
        return content_digest(scratch)
    finally:
        scratch.unlink()


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x55
    path.write_bytes(bytes(data))


def sidecars(backup: Path) -> list[Path]:
    return [backup.with_name(backup.name + suffix) for suffix in (".meta", ".pages")]


def tree_state(directory: Path) -> dict[str, str]:
    """Name -> SHA3-256 of every file in ``directory`` (a database and its companions,
    pre-restore backups) but dagvault's lock files."""
    return {
        p.name: sha3_file(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.endswith(".dagvault.lock")
    }


@pytest.fixture(scope="module")
def medium_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("medium") / "blockchain.db"
    create_sample_ledger(path, MEDIUM_TRANSACTIONS, seed=5, nodes=32)
    return path


# --------------------------------------------------------------------------- types and links


def test_incremental_and_differential_parents_and_metadata(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken: list[tuple[BackupInfo, dict[str, str]]] = []

    def backup(kind: str) -> BackupInfo:
        info = take(ledger, backups, kind)
        taken.append((info, content_digest(ledger)))
        return info

    full = backup("full")
    execute(ledger, "UPDATE transactions SET amount = amount + 7 WHERE id % 25 = 0")
    incr1 = backup("incremental")
    create_sample_ledger(ledger, 20, seed=7, append=True)
    diff1 = backup("differential")
    execute(ledger, "DELETE FROM transaction_parents WHERE child_id % 9 = 0")
    incr2 = backup("incremental")
    execute(ledger, "UPDATE nodes SET stake = stake * 2")
    diff2 = backup("differential")
    incr3 = backup("incremental")  # nothing changed since diff2

    name = {id(info): path_of(info).name for info, _ in taken}
    expected = [
        (incr1, "Incremental", ".incr", full),  # newest backup of any type: the full
        (diff1, "Differential", ".diff", full),  # newest full
        (incr2, "Incremental", ".incr", diff1),  # newest of any type: the differential
        (diff2, "Differential", ".diff", full),  # never an incremental
        (incr3, "Incremental", ".incr", diff2),
    ]
    assert full.backup_type == "Full" and "parent" not in full.metadata
    for info, backup_type, suffix, parent in expected:
        path = path_of(info)
        assert info.backup_type == backup_type
        assert path.name.endswith(suffix)
        assert info.metadata["parent"] == name[id(parent)]
        assert info.metadata["parent_checksum"] == parent.checksum
        assert info.metadata["base_full"] == name[id(full)]
        assert "full_backup_reason" not in info.metadata
        # The checksum and size are those of the stored delta bytes.
        assert info.checksum == sha3_file(path) == read_meta_json(path)["checksum"]
        assert info.file_size == path.stat().st_size

    for info, live_digest in taken:
        path = path_of(info)
        image = image_of(path)
        assert digest_of_image(image, tmp_path / "image.db") == live_digest
        if info.backup_type == "Full":
            continue
        header, records = parse_delta(path)
        page_size = info.page_size
        parent_image = image_of(path.with_name(info.metadata["parent"]))
        new, old = split_pages(image, page_size), split_pages(parent_image, page_size)
        differing = {
            n + 1 for n, page in enumerate(new) if n >= len(old) or old[n] != page
        }  # 1-based, like the format
        assert set(records) == differing, "the delta holds exactly the pages that changed"
        assert info.changed_pages == len(differing) == header["changed_pages"]
        assert header["page_count"] == info.page_count == len(new)
        assert header["parent_checksum"] == info.metadata["parent_checksum"]
        assert info.metadata["image_digest"] == header["image_digest"]
        assert info.metadata["image_digest"] == independent_image_digest(image, page_size)
    assert incr3.changed_pages <= 1  # at most the header page

    listed = {Path(e["backup_path"]).name: e for e in (x.to_json() for x in list_backups(backups))}
    assert len(listed) == len(taken)
    for info, _ in taken:
        entry = listed[path_of(info).name]
        assert entry["backup_type"] == info.backup_type
        assert entry["parent"] == info.metadata.get("parent")
        assert entry["base_full"] == info.metadata.get("base_full")
    assert [x.to_json()["backup_type"] for x in list_backups(backups)] == [
        "Incremental",
        "Differential",
        "Incremental",
        "Differential",
        "Incremental",
        "Full",
    ]


def test_updates_deletes_and_schema_changes_restore_exactly(ledger: Path, tmp_path: Path) -> None:
    backups, out = tmp_path / "backups", tmp_path / "out"
    steps: list[tuple[str, tuple[str, ...]]] = [
        ("full", ()),
        (
            "incremental",
            ("UPDATE transactions SET fee = fee + 1, payload = NULL WHERE id % 10 = 0",),
        ),
        ("incremental", ("DELETE FROM transaction_parents WHERE child_id > 150",)),
        (
            "differential",
            (
                "DELETE FROM transactions WHERE id > 250 AND id NOT IN "
                "(SELECT parent_id FROM transaction_parents)",
            ),
        ),
        (
            "incremental",
            (
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
                "INSERT INTO notes (body) SELECT hex(signature) FROM transactions WHERE id < 40",
                "UPDATE nodes SET last_seen = last_seen + 60",
            ),
        ),
        (
            "incremental",
            (
                "DROP TABLE notes",
                "DELETE FROM nodes WHERE node_id NOT IN "
                "(SELECT validator FROM transactions WHERE validator IS NOT NULL)",
            ),
        ),
    ]
    taken = []
    for kind, statements in steps:
        if statements:
            execute(ledger, *statements)
        taken.append((take(ledger, backups, kind), content_digest(ledger)))
    assert [info.backup_type for info, _ in taken] == [
        "Full",
        "Incremental",
        "Incremental",
        "Differential",
        "Incremental",
        "Incremental",
    ]
    digests = [digest for _, digest in taken]
    assert len({json.dumps(d, sort_keys=True) for d in digests}) == len(digests)
    for info, digest in taken:
        target = restored(path_of(info), out)
        assert content_digest(target) == digest
        assert integrity(target) == ["ok"]
    # The rows the deltas deleted are gone from the restore, not resurrected from the full.
    last = restored(path_of(taken[2][0]), out)
    assert query(last, "SELECT count(*) FROM transaction_parents WHERE child_id > 150") == [(0,)]


# --------------------------------------------------------------------------- full instead of delta


@pytest.mark.parametrize("kind", ["incremental", "differential"])
def test_without_a_base_a_full_backup_is_taken_and_says_why(
    ledger: Path, tmp_path: Path, kind: str
) -> None:
    backups = tmp_path / "backups"
    # A backup of another database in the same directory is never a base.
    other = make_database(tmp_path / "other.db", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"])
    take(other, backups, "full")
    info = take(ledger, backups, kind)
    assert info.backup_type == "Full"
    assert path_of(info).name.endswith(".db")
    assert "no earlier" in info.metadata["full_backup_reason"]
    assert "parent" not in info.metadata
    assert verify_file(path_of(info)).ok
    # And the next one is a delta against it.
    execute(ledger, "UPDATE nodes SET stake = stake + 1")
    delta = take(ledger, backups, kind)
    assert delta.backup_type == kind.capitalize()
    assert delta.metadata["parent"] == path_of(info).name


def test_differential_with_only_deltas_since_the_last_full_still_uses_that_full(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    full = take(ledger, backups, "full")
    for n in range(3):
        execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 10 = ?", params=[n])
        take(ledger, backups, "incremental")
    diff = take(ledger, backups, "differential")
    assert diff.metadata["parent"] == diff.metadata["base_full"] == path_of(full).name
    assert content_digest(restored(path_of(diff), tmp_path / "out")) == content_digest(ledger)


def test_vacuum_rewriting_most_pages_gives_a_full_backup(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    take(ledger, backups, "full")
    with closing(sqlite3.connect(ledger, isolation_level=None)) as conn:
        conn.execute("VACUUM")
    info = take(ledger, backups, "incremental")
    assert info.backup_type == "Full"
    reason = info.metadata["full_backup_reason"]
    changed, _, total = reason.split(" pages changed")[0].partition(" of ")
    assert int(changed) > MAX_CHANGED_SHARE * int(total), reason
    assert "VACUUM" in reason
    assert "changed_pages" not in info.metadata and "parent" not in info.metadata
    assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(ledger)
    # The next incremental is a delta against the fallback full, and its digests were cached.
    execute(ledger, "UPDATE nodes SET stake = stake + 1")
    delta = take(ledger, backups, "incremental")
    assert delta.backup_type == "Incremental"
    assert delta.metadata["parent"] == path_of(info).name


@pytest.mark.parametrize(("share", "kind"), [(0.3, "Incremental"), (0.7, "Full")])
def test_changed_share_threshold(tmp_path: Path, share: float, kind: str) -> None:
    # About one row per page: rewriting a share of the rows rewrites that share of the pages.
    db = make_database(
        tmp_path / "wide.db",
        ["CREATE TABLE wide (id INTEGER PRIMARY KEY, body BLOB)"]
        + ["INSERT INTO wide (body) VALUES (randomblob(3000))"] * 200,
    )
    backups = tmp_path / "backups"
    take(db, backups, "full")
    execute(db, "UPDATE wide SET body = randomblob(3000) WHERE id <= ?", params=[int(200 * share)])
    info = take(db, backups, "incremental")
    assert info.backup_type == kind
    assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(db)


def test_a_shrinking_database_gives_a_delta_that_truncates(tmp_path: Path) -> None:
    db = tmp_path / "shrinks.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA auto_vacuum=FULL")  # frees pages by truncating the file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(os.urandom(3000),)] * 300)
    backups = tmp_path / "backups"
    full = take(db, backups, "full")
    execute(db, "DELETE FROM t WHERE id > 240")
    info = take(db, backups, "incremental")
    assert info.backup_type == "Incremental"
    assert info.page_count < full.page_count - 50
    image = image_of(path_of(info))
    assert len(image) == info.page_count * info.page_size
    assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(db)
    # Growing again past the old size.
    execute(db, "INSERT INTO t (body) SELECT randomblob(3000) FROM t WHERE id <= 100")
    grown = take(db, backups, "incremental")
    assert grown.backup_type == "Incremental"
    assert grown.page_count > full.page_count
    assert content_digest(restored(path_of(grown), tmp_path / "out")) == content_digest(db)


def test_page_size_change_gives_a_full_backup(tmp_path: Path) -> None:
    db = make_database(
        tmp_path / "plain.db",
        ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]
        + [f"INSERT INTO t (v) VALUES ('{'x' * 500}{n}')" for n in range(300)],
        page_size=4096,
        journal_mode="delete",
    )
    kinds = ("incremental", "differential")
    for kind in kinds:
        take(db, tmp_path / kind, "full")
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA page_size=8192")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 8192
    for kind in kinds:
        info = take(db, tmp_path / kind, kind)
        assert info.backup_type == "Full"
        assert "page size changed from 4096 to 8192" in info.metadata["full_backup_reason"]
        assert info.page_size == 8192
        assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(db)


def test_a_replaced_database_file_gives_a_full_backup(ledger: Path, tmp_path: Path) -> None:
    kinds = ("incremental", "differential")
    for kind in kinds:
        take(ledger, tmp_path / kind, "full")
    old_inode = ledger.stat().st_ino
    # Same path, same bytes, another file: what a restore-by-copy or VACUUM INTO + rename
    # leaves. Page for page a delta would be empty; only the inode tells.
    replacement = ledger.with_name("replacement.db")
    shutil.copyfile(ledger, replacement)
    ledger.unlink()
    replacement.rename(ledger)
    assert ledger.stat().st_ino != old_inode
    for kind in kinds:
        info = take(ledger, tmp_path / kind, kind)
        assert info.backup_type == "Full"
        assert "replaced" in info.metadata["full_backup_reason"]
        assert "another inode" in info.metadata["full_backup_reason"]
    # A delta against the backups of the new file is fine again.
    execute(ledger, "UPDATE nodes SET stake = stake + 1")
    for kind in kinds:
        info = take(ledger, tmp_path / kind, kind)
        assert info.backup_type == kind.capitalize()
        assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(ledger)


def test_a_base_that_failed_verification_is_skipped(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full = take(ledger, backups, "full")
    execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 4 = 0")
    bad = take(ledger, backups, "incremental")
    flip_byte(path_of(bad))
    assert not verify_backup(path_of(bad)).ok  # records "failed" in its sidecar
    assert read_meta_json(path_of(bad))["verification"]["status"] == "failed"

    execute(ledger, "UPDATE nodes SET stake = stake + 3")
    info = take(ledger, backups, "incremental")
    assert info.backup_type == "Incremental"
    assert info.metadata["parent"] == path_of(full).name  # not the failed one
    assert verify_file(path_of(info)).ok
    assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(ledger)


def test_a_base_whose_chain_contains_a_failed_backup_is_not_used(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    full = take(ledger, backups, "full")
    execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 4 = 0")
    take(ledger, backups, "incremental")  # newest, itself unverified, its parent ...
    flip_byte(path_of(full))
    assert not verify_backup(path_of(full)).ok  # ... failed verification
    execute(ledger, "UPDATE nodes SET stake = stake + 3")
    info = take(ledger, backups, "incremental")
    # A delta on top of a chain known to be broken could never be restored.
    assert info.backup_type == "Full"
    assert "failed verification" in info.metadata["full_backup_reason"]
    assert path_of(full).name in info.metadata["full_backup_reason"]
    assert verify_file(path_of(info)).ok


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize("change", ["update", "append"])
def test_a_small_change_gives_a_small_delta(
    medium_ledger: Path, tmp_path: Path, change: str
) -> None:
    db = copy_of(medium_ledger, tmp_path / "live")
    backups = tmp_path / "backups"
    full = take(db, backups, "full")
    rows = MEDIUM_TRANSACTIONS // 100  # 1% of the transactions
    if change == "update":
        execute(
            db,
            "UPDATE transactions SET amount = amount + 1, fee = fee + 1 WHERE id IN "
            "(SELECT id FROM transactions ORDER BY random() LIMIT ?)",
            params=[rows],
        )
    else:
        create_sample_ledger(db, rows, seed=5, append=True)
    info = take(db, backups, "incremental")
    assert info.backup_type == "Incremental"
    db_size = db.stat().st_size
    assert info.file_size < 0.10 * db_size, (info.file_size, db_size)
    assert info.file_size < 0.10 * full.file_size
    # Size follows the changed pages: a record is a page plus its 4-byte number.
    overhead = info.file_size - info.changed_pages * (info.page_size + 4)
    assert 0 < overhead < 1024
    assert content_digest(restored(path_of(info), tmp_path / "out")) == content_digest(db)


# --------------------------------------------------------------------------- broken chains


@pytest.fixture
def chain(ledger: Path, tmp_path: Path) -> dict[str, Path]:
    """full -> incr1 -> incr2 -> incr3, then a differential (the newest) against the full."""
    backups = tmp_path / "backups"
    paths = {"full": path_of(take(ledger, backups, "full"))}
    for n in (1, 2, 3):
        execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 7 = ?", params=[n])
        paths[f"incr{n}"] = path_of(take(ledger, backups, "incremental"))
    execute(ledger, "UPDATE nodes SET stake = stake + 1")
    paths["diff"] = path_of(take(ledger, backups, "differential"))
    for n in (1, 2, 3):
        assert (
            read_meta_json(paths[f"incr{n}"])["metadata"]["parent"]
            == paths["full" if n == 1 else f"incr{n - 1}"].name
        )
    return paths


def break_missing_parent(paths: dict[str, Path]) -> None:
    for path in (paths["incr1"], *sidecars(paths["incr1"])):
        path.unlink()


def break_parent_checksum(paths: dict[str, Path]) -> None:
    # In a page no delta of the chain rewrites, so that even a rebuilt image shows it.
    rewritten = set().union(*(parse_delta(paths[f"incr{n}"])[1] for n in (1, 2, 3)))
    page = next(n for n in range(2, 10_000) if n not in rewritten)
    flip_byte(paths["full"], (page - 1) * 4096 + 1000)


def break_parent_replaced(paths: dict[str, Path]) -> None:
    # Another (valid, complete) backup's data and metadata under incr1's name.
    shutil.copyfile(paths["diff"], paths["incr1"])
    shutil.copyfile(*(p.with_name(p.name + ".meta") for p in (paths["diff"], paths["incr1"])))


def break_deltas_swapped(paths: dict[str, Path]) -> None:
    a, b = paths["incr1"], paths["incr2"]
    swap = a.with_name("swap")
    a.rename(swap)
    b.rename(a)
    swap.rename(b)


def break_truncated_delta(paths: dict[str, Path]) -> None:
    path = paths["incr2"]
    os.truncate(path, path.stat().st_size // 2)


BREAKS = {
    # name: (how, the link named in the problem, phrases one of which the problem holds)
    "missing-parent": (break_missing_parent, "incr1", ("is missing",)),
    "parent-bad-checksum": (break_parent_checksum, "full", ("SHA3-256 does not match",)),
    "parent-replaced": (break_parent_replaced, "incr1", ("wrong parent checksum",)),
    "deltas-swapped": (break_deltas_swapped, "incr1", ("bytes, found", "SHA3-256 does not")),
    "truncated-delta": (break_truncated_delta, "incr2", ("bytes, found",)),
}
# Caught without any checksum too: by the chain's links, or the rebuilt image's digest.
# (Two swapped deltas can rebuild the right image after all; only checksums catch those.)
CAUGHT_WITHOUT_CHECKSUMS = (
    "missing-parent",
    "parent-bad-checksum",
    "parent-replaced",
    "truncated-delta",
)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_verify_names_the_broken_link_and_restore_refuses(
    chain: dict[str, Path], tmp_path: Path, name: str
) -> None:
    how, culprit, phrases = BREAKS[name]
    healthy = {key: verify_file(path) for key, path in chain.items()}
    assert all(report.ok for report in healthy.values())
    how(chain)

    report = verify_file(chain["incr3"])
    assert not report.ok
    text = "; ".join(report.problems)
    assert chain[culprit].name in text, text
    assert any(phrase in text for phrase in phrases), text
    assert "integrity_check" not in report.checks  # no SQLite check on a broken image

    # restore refuses every broken chain and leaves the live database as it was.
    (tmp_path / "live").mkdir()
    live = make_database(
        tmp_path / "live" / "node.db", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (42)"]
    )
    before = tree_state(live.parent)
    for target in (chain["incr2"], chain["incr3"]):
        if not target.exists():
            continue
        with pytest.raises(VerificationError):
            restore_backup(target, live)
        if name in CAUGHT_WITHOUT_CHECKSUMS:
            with pytest.raises(VerificationError):
                restore_backup(target, live, verify=False)  # still proves chain and image
    assert tree_state(live.parent) == before
    assert query(live, "SELECT x FROM t") == [(42,)]

    # Backups off the broken path are still fine.
    assert verify_file(chain["diff"]).ok is (name not in ("parent-bad-checksum",))


@pytest.mark.parametrize("name", CAUGHT_WITHOUT_CHECKSUMS)
def test_a_broken_chain_is_caught_even_without_checksums(chain: dict[str, Path], name: str) -> None:
    # RESTORE_VERIFY_CHECKSUM=false skips the SHA3 pass; links and the image digest hold.
    BREAKS[name][0](chain)
    report = verify_file(chain["incr3"], checksum=False)
    assert not report.ok
    assert report.checks["chain"].startswith("failed: ")
    expected = {
        "missing-parent": "is missing",
        "parent-bad-checksum": "does not match the image digest",
        "parent-replaced": "wrong parent checksum",
        "truncated-delta": "truncated",
    }[name]
    assert expected in report.checks["chain"], report.checks


def first_record_offset(delta: Path) -> int:
    (length,) = struct.unpack_from("<I", delta.read_bytes(), 8)
    return 12 + length


def zero_page_count(data: bytes, at: int) -> bytes:
    return re.sub(
        rb'"page_count": (\d+)', lambda m: b'"page_count": ' + b"0".rjust(len(m[1])), data, count=1
    )


def header_as_array(data: bytes, at: int) -> bytes:
    return data[:12] + b"[" + b" " * (at - 14) + b"]" + data[at:]


DELTA_DAMAGE = {
    # Damage the SHA3 pass would catch, with that pass switched off: the rebuild must still
    # fail cleanly (a VerificationError naming the delta), not seek before the start of
    # the image or grow it into a terabyte-sized sparse file.
    # name: (damage, phrase of the problem)
    "page-number-0": (
        lambda b, at: b[:at] + struct.pack("<I", 0) + b[at + 4 :],
        "out of order or past",
    ),
    "page-number-huge": (
        lambda b, at: b[:at] + struct.pack("<I", 0xFFFFFFF0) + b[at + 4 :],
        "out of order or past",
    ),
    "page-size-4095": (
        lambda b, at: b.replace(b'"page_size": 4096', b'"page_size": 4095', 1),
        "delta header is invalid",
    ),
    "page-count-0": (zero_page_count, "delta header is invalid"),
    "header-not-an-object": (header_as_array, "delta header is not a JSON object"),
}


@pytest.mark.parametrize("damage", sorted(DELTA_DAMAGE))
def test_a_damaged_delta_fails_cleanly_even_unverified(
    chain: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    how, phrase = DELTA_DAMAGE[damage]
    delta = chain["incr2"]
    data = delta.read_bytes()
    damaged = how(data, first_record_offset(delta))
    assert damaged != data and len(damaged) == len(data)
    delta.write_bytes(damaged)
    report = verify_file(chain["incr3"], checksum=False)
    assert not report.ok
    assert chain["incr2"].name in report.checks["chain"], report.checks
    assert phrase in report.checks["chain"], report.checks
    (tmp_path / "live").mkdir()
    live = make_database(tmp_path / "live" / "node.db", ["CREATE TABLE t (x)"])
    before = tree_state(live.parent)
    with pytest.raises(VerificationError):
        restore_backup(chain["incr3"], live, verify=False)
    assert tree_state(live.parent) == before
    assert all(p.stat().st_size < 100 * 1024 * 1024 for p in tmp_path.rglob("*") if p.is_file())


def test_verify_records_the_failure_of_a_delta_with_a_broken_chain(
    chain: dict[str, Path],
) -> None:
    break_parent_checksum(chain)
    report = verify_backup(chain["incr2"])
    assert not report.ok
    assert read_meta_json(chain["incr2"])["verification"]["status"] == "failed"
    assert read_meta_json(chain["full"])["verification"]["status"] == "unverified"


PAGES_DAMAGE = {
    "flipped-byte": lambda p: flip_byte(p, p.stat().st_size - 5),
    "truncated": lambda p: os.truncate(p, p.stat().st_size - 32),
    "header-only": lambda p: os.truncate(p, 40),
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", sorted(PAGES_DAMAGE))
def test_a_damaged_page_cache_is_recomputed(ledger: Path, tmp_path: Path, damage: str) -> None:
    backups = tmp_path / "backups"
    take(ledger, backups, "full")
    execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 6 = 0")
    incr = path_of(take(ledger, backups, "incremental"))
    cache = pages.cache_path(incr)
    assert cache.is_file()
    good = cache.read_bytes()
    PAGES_DAMAGE[damage](cache)

    report = verify_file(incr)  # verification never reads the cache
    assert report.ok, report.problems
    # Revert part of the change: pages go back to the full's bytes. A delta planned
    # against wrong digests would miss exactly those.
    execute(ledger, "UPDATE transactions SET amount = amount - 1 WHERE id % 12 = 0")
    nxt = take(ledger, backups, "incremental")
    assert nxt.backup_type == "Incremental" and nxt.metadata["parent"] == incr.name
    assert verify_file(path_of(nxt)).ok
    assert content_digest(restored(path_of(nxt), tmp_path / "out")) == content_digest(ledger)
    assert cache.read_bytes() == good  # recomputed and cached again


def test_a_cache_belonging_to_another_backup_is_not_trusted(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    full = path_of(take(ledger, backups, "full"))
    execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 6 = 0")
    incr = path_of(take(ledger, backups, "incremental"))
    assert pages.cache_path(full).is_file()  # computed for the incremental above
    # Well-formed and self-consistent, but the full's digests, not incr's ...
    shutil.copyfile(pages.cache_path(full), pages.cache_path(incr))
    # ... and the change is undone: against the full's digests nothing changed at all.
    execute(ledger, "UPDATE transactions SET amount = amount - 1 WHERE id % 6 = 0")
    nxt = take(ledger, backups, "incremental")
    assert nxt.metadata["parent"] == incr.name
    assert nxt.changed_pages > 1
    assert verify_file(path_of(nxt)).ok
    assert content_digest(restored(path_of(nxt), tmp_path / "out")) == content_digest(ledger)


def test_a_stale_cache_of_a_replaced_full_is_not_trusted(ledger: Path, tmp_path: Path) -> None:
    # A full has no image digest in its metadata; its cache is bound to its file instead.
    backups = tmp_path / "backups"
    old = path_of(take(ledger, backups, "full"))  # state S0
    execute(ledger, "UPDATE transactions SET amount = amount + 1 WHERE id % 6 = 0")  # S1
    take(ledger, backups, "incremental")  # caches the digests of old (S0)
    newer = path_of(take(ledger, tmp_path / "elsewhere", "full"))  # S1
    # An operator puts "the" full back from elsewhere: S1's data and metadata under old's
    # name, the only backup now; old's cache (of S0) is still beside it.
    for path in backups.iterdir():
        if path.name != old.name + ".pages" and not path.name.startswith("."):
            path.unlink()
    shutil.copyfile(newer, old)
    document = read_meta_json(newer)
    document["backup_path"] = str(old)
    write_meta_json(old, document)
    assert pages.cache_path(old).is_file()
    assert pages.load(old, 4096) is None
    execute(ledger, "UPDATE transactions SET amount = amount - 1 WHERE id % 6 = 0")  # S0
    nxt = take(ledger, backups, "incremental")
    assert nxt.metadata["parent"] == old.name
    assert nxt.changed_pages > 1  # against S0's digests: nothing changed
    assert verify_file(path_of(nxt)).ok
    assert content_digest(restored(path_of(nxt), tmp_path / "out")) == content_digest(ledger)


# --------------------------------------------------------------------------- page digests


def digests_independently(path: Path, page_size: int) -> bytes:
    return b"".join(
        hashlib.blake2b(page, digest_size=32).digest()
        for page in split_pages(path.read_bytes(), page_size)
    )


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7, 5_000_003])
def test_page_digests_with_and_without_the_helper_process(tmp_path: Path, size: int) -> None:
    image = tmp_path / "image"
    image.write_bytes(random.Random(size).randbytes(size))
    for page_size in (512, 4096, 65536):
        expected = digests_independently(image, page_size)
        assert pages.page_digests(image, page_size) == expected  # one process
        assert pages.page_digests(image, page_size, helper_min_bytes=0) == expected


def test_the_helper_process_hashes_half_and_its_failure_is_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "image"
    image.write_bytes(random.Random(3).randbytes(64 * 4096 + 100))
    expected = digests_independently(image, 4096)
    marker = tmp_path / "helper-ran"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))
    assert pages.page_digests(image, 4096, helper_min_bytes=0) == expected
    assert marker.exists(), "no helper process ran"
    # A helper that fails, or cannot start at all: this process hashes everything.
    for broken in (shutil.which("false") or "/bin/false", str(tmp_path / "missing")):
        monkeypatch.setattr(sys, "executable", broken)
        assert pages.page_digests(image, 4096, helper_min_bytes=0) == expected


@settings(max_examples=200, deadline=None)
@given(
    old=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
    new=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
)
def test_changed_pages_is_the_page_by_page_comparison(old: list[bytes], new: list[bytes]) -> None:
    expected = [n + 1 for n, digest in enumerate(new) if n >= len(old) or old[n] != digest]
    assert changed_pages(b"".join(old), b"".join(new)) == expected


def test_a_chain_at_its_longest_gets_a_full_backup(
    ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "MAX_DELTAS", 2)
    backups = tmp_path / "backups"
    take(ledger, backups, "full")
    kinds = []
    for n in range(4):
        execute(ledger, "UPDATE nodes SET stake = stake + ?", params=[n])
        kinds.append(take(ledger, backups, "incremental"))
    assert [i.backup_type for i in kinds] == ["Incremental", "Incremental", "Full", "Incremental"]
    assert kinds[2].metadata["full_backup_reason"] == (
        f"the chain of {path_of(kinds[1]).name} has 2 deltas already, the most one may have "
        "(2): a full backup starts a new one"
    )
    assert kinds[3].metadata["parent"] == path_of(kinds[2]).name
