"""Corrupt backups: every damage must be caught by verify and refused by restore.

A set of real backups (full, compressed full, a chain full → incremental → incremental,
a compressed incremental) is damaged in a fresh copy each time: bit flips at random
offsets, truncation at random lengths, a deleted, edited or bit-rotted ``.meta``, a delta
swapped for another's (data alone, or data and sidecar), a missing chain link. Each damaged
backup and every backup that depends on it must fail ``verify_file`` and be refused by
``restore_backup`` with a message that names the damaged file and the problem.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dagvault.backup import create_backup
from dagvault.errors import VerificationError
from dagvault.meta import meta_path
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file
from faults._harness import Figures, points

# name -> (kind, compressed); in the order taken, each delta on the one before it.
BACKUPS = {
    "full": ("full", False),
    "incr1": ("incremental", False),
    "incr2": ("incremental", False),
    "zfull": ("full", True),
    "zincr": ("incremental", True),
}
DEPENDENTS = {"full": ["incr1", "incr2"], "incr1": ["incr2"], "zfull": ["zincr"]}


@dataclass(frozen=True)
class BackupSet:
    directory: Path
    files: dict[str, str]  # name -> file name


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> BackupSet:
    root = tmp_path_factory.mktemp("corruption")
    db = root / "ledger.db"
    create_sample_ledger(db, 400, seed=9, nodes=8)
    directory = root / "backups"
    files = {}
    for n, (name, (kind, compressed)) in enumerate(BACKUPS.items()):
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("UPDATE transactions SET fee = fee + 1 WHERE id % 9 = ?", (n,))
        info = create_backup(db, directory, kind=kind, compression=compressed)
        assert info.backup_type == kind.capitalize()
        files[name] = Path(info.backup_path).name
    return BackupSet(directory, files)


# A corruption damages a copy of the set and returns (damaged file, what verify must say:
# alternatives separated by "|").
Corruption = Callable[[random.Random, Path, dict[str, str], str], tuple[str, str]]


def flip_bit(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    path = d / files[name]
    data = bytearray(path.read_bytes())
    offset = rng.randrange(len(data))
    data[offset] ^= 1 << rng.randrange(8)
    path.write_bytes(data)
    return path.name, "SHA3-256"


def truncate(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    path = d / files[name]
    os.truncate(path, rng.randrange(path.stat().st_size))
    return path.name, "bytes"


def delete_meta(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    meta_path(d / files[name]).unlink()
    return files[name], "missing"


def _mutate(rng: random.Random, value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1, 4096])
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"
    if isinstance(value, list):
        return [*value, "edited"]
    if isinstance(value, dict):
        return {**value, "edited": 1}
    return 0


def edit_meta(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    """Change one field (top level or inside metadata/verification) as a hand edit would."""
    sidecar = meta_path(d / files[name])
    document = json.loads(sidecar.read_text())
    fields = [(document, key) for key in document]
    for nested in ("metadata", "verification"):
        if isinstance(document.get(nested), dict):
            fields += [(document[nested], key) for key in document[nested]]
    container, key = rng.choice(fields)
    container[key] = _mutate(rng, container[key])
    sidecar.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return sidecar.name, "metadata"


def rot_meta(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    sidecar = meta_path(d / files[name])
    data = bytearray(sidecar.read_bytes())
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    sidecar.write_bytes(data)
    return sidecar.name, "metadata"


def swap_delta_data(
    rng: random.Random, d: Path, files: dict[str, str], name: str
) -> tuple[str, str]:
    other = "incr1" if name == "incr2" else "incr2"
    shutil.copyfile(d / files[other], d / files[name])
    return files[name], "SHA3-256|bytes"  # the other delta may have the same size


def swap_delta(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    """Another delta's data file and sidecar put in this one's place."""
    other = "incr1" if name == "incr2" else "incr2"
    shutil.copyfile(d / files[other], d / files[name])
    shutil.copyfile(meta_path(d / files[other]), meta_path(d / files[name]))
    return files[name], f"written as {files[other]}"


def drop_link(rng: random.Random, d: Path, files: dict[str, str], name: str) -> tuple[str, str]:
    (d / files[name]).unlink()
    if rng.random() < 0.5:
        meta_path(d / files[name]).unlink()
    return files[name], "missing"


CORRUPTIONS: dict[str, tuple[Corruption, list[str]]] = {
    "bit flip at a random offset": (flip_bit, list(BACKUPS)),
    "truncated at a random length": (truncate, list(BACKUPS)),
    "deleted .meta": (delete_meta, list(BACKUPS)),
    "edited .meta field": (edit_meta, list(BACKUPS)),
    "bit flip in .meta": (rot_meta, list(BACKUPS)),
    "delta's data swapped for another's": (swap_delta_data, ["incr1", "incr2"]),
    "delta and .meta swapped for another's": (swap_delta, ["incr1", "incr2"]),
    "missing chain link": (drop_link, ["full", "incr1", "zfull"]),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_every_corruption_is_detected_and_refused(
    pristine: BackupSet, tmp_path: Path, kind: str, figures: Figures
) -> None:
    corrupt, targets = CORRUPTIONS[kind]
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    injected = verified_bad = refused = 0
    for round_ in range(points(3, 20)):
        for target in targets:
            work = tmp_path / f"r{round_}-{target}"
            shutil.copytree(pristine.directory, work)
            damaged, problem = corrupt(rng, work, pristine.files, target)
            context = f"{kind} of {target} (seed={seed}): {damaged}"
            injected += 1
            checked = [target] if (work / pristine.files[target]).is_file() else []
            for name in checked + DEPENDENTS.get(target, []):
                backup = work / pristine.files[name]
                if name != target:  # a dependent names the broken link of its chain
                    problem = "chain"
                report = verify_file(backup)
                assert not report.ok, f"{context}: verify accepted {backup.name}"
                message = f"{backup.name}: " + "; ".join(report.problems)
                assert damaged.removesuffix(".meta") in message, f"{context}: {message}"
                assert any(p in message for p in problem.split("|")), f"{context}: {message}"
                verified_bad += 1

                scratch = tmp_path / "scratch.db"
                with pytest.raises(VerificationError) as caught:
                    restore_backup(backup, scratch)
                assert caught.value.exit_code == 4
                assert damaged.removesuffix(".meta") in caught.value.message, context
                assert any(p in caught.value.message for p in problem.split("|")), context
                assert caught.value.hint
                assert not scratch.exists(), f"{context}: restore created {scratch}"
                refused += 1
            shutil.rmtree(work)
    assert verified_bad == refused >= injected
    figures.add(
        "Corruption",
        corruption=kind,
        faults_injected=injected,
        faults_detected=injected,
        backups_checked=verified_bad,
        refused_by_restore=refused,
        data_lost=0,
    )
