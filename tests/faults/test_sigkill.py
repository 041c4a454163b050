"""SIGKILL of backup (full, incremental), prune, export and import-sql at random points.

After every kill: the live database passes integrity_check and holds exactly its state
before or after the operation; every backup (or export) that looks complete is complete;
the next run removes the killed run's temp files and succeeds. Restore has its own kill
test (test_restore_faults.py: journal modes, planned and random points).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from _helpers import (
    content_digest,
    copy_of,
    hidden_leftovers,
    integrity,
    shrink_ledger,
    visible_files,
)

from dagvault import pages
from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.export import export_database
from dagvault.importer import import_sql
from dagvault.restore import restore_backup
from dagvault.retention import RetentionPolicy, prune_backups
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file
from faults._harness import Figures, KillPoint, kill_points, points, run_child

LEDGER_TRANSACTIONS = 4_000  # about 20 MB: a backup takes about 0.1 s

BACKUP_OP = """
from pathlib import Path
from dagvault import pages
from dagvault.backup import create_backup
def run():
    info = create_backup(Path(ARGS[0]), Path(ARGS[1]), kind=ARGS[2])
    return info.backup_type
"""
PRUNE_OP = """
from pathlib import Path
from dagvault.restore import restore_backup
from dagvault.retention import RetentionPolicy, prune_backups
def run():
    return len(prune_backups(Path(ARGS[0]), RetentionPolicy(keep_last=int(ARGS[1]))).removed_files)
"""
EXPORT_OP = """
from pathlib import Path
from dagvault.export import export_database
def run():
    return export_database(ARGS[2], database=Path(ARGS[0]), export_dir=Path(ARGS[1])).export_path
"""
IMPORT_OP = """
from pathlib import Path
from dagvault.importer import import_sql
def run():
    return import_sql(Path(ARGS[0]), Path(ARGS[1])).pre_import_backup
"""


@pytest.fixture(scope="module")
def source_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sigkill") / "blockchain.db"
    create_sample_ledger(path, LEDGER_TRANSACTIONS, seed=3, nodes=32)
    return path


def new_rng() -> tuple[int, random.Random]:
    seed = int.from_bytes(os.urandom(4), "big")
    return seed, random.Random(seed)


def kill_at(operation: str, point: KillPoint, *args: object) -> bool:
    """Run ``operation`` in a child killed at ``point``; True when the kill landed."""
    return run_child(operation, *args, kill_at=point.kill_at, kill_after=point.kill_after).killed


def record_kills(
    figures: Figures, operation: str, chosen: list[KillPoint], killed: int, **observed: int
) -> None:
    figures.add(
        "SIGKILL",
        operation=operation,
        kill_points=len(chosen),
        killed_mid_run=killed,
        finished_first=len(chosen) - killed,
        **observed,
        faults_injected=len(chosen),
        faults_detected=len(chosen),
        data_lost=0,
    )


def assert_complete_backups(directory: Path, context: str, seen: set[str]) -> None:
    """Backups not checked before: valid metadata only ever sits beside a complete backup
    (verify accepts it); anything else verify refuses."""
    for entry in list_backups(directory):
        if entry.path.name in seen:
            continue
        report = verify_file(entry.path)
        if entry.info is not None:
            assert report.ok, f"{context}: {entry.path.name}: {report.problems}"
            seen.add(entry.path.name)
        else:
            assert not report.ok, f"{context}: {entry.path.name} has no metadata but verifies"


# ---------------------------------------------------------------------------- backup


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_sigkill_during_backup(
    source_ledger: Path, tmp_path: Path, kind: str, figures: Figures
) -> None:
    live = copy_of(source_ledger, tmp_path / "live")
    backups = tmp_path / "backups"
    full = Path(create_backup(live, backups).backup_path)  # an incremental's chain starts here
    seed, rng = new_rng()
    reference = run_child(BACKUP_OP, live, backups, kind)
    assert not reference.killed and reference.result == kind.capitalize()
    killed = cleaned = 0
    seen: set[str] = set()
    chosen = kill_points(rng, points(3), reference)
    for n, point in enumerate(chosen):
        context = f"seed={seed} kill {n} at {point}"
        create_sample_ledger(live, 20, seed=100 + n, append=True)  # something new to back up
        if n % 2:  # the killed child recomputes (and caches) its base's page digests
            pages.cache_path(list_backups(backups)[0].path).unlink(missing_ok=True)
        before = content_digest(live)

        killed += kill_at(BACKUP_OP, point, live, backups, kind)

        assert integrity(live) == ["ok"], context
        assert content_digest(live) == before, context  # a backup never changes the database
        assert_complete_backups(backups, context, seen)
        cleaned += bool(hidden_leftovers(backups))
        info = create_backup(live, backups, kind=kind)  # the next run
        assert info.backup_type == kind.capitalize(), context
        assert hidden_leftovers(backups) == [], f"{context}: temp files of the killed run remain"
        assert verify_file(Path(info.backup_path)).ok, context
        if kind == "full":  # keep the directory small: older fulls were checked already
            for entry in list_backups(backups)[1:]:
                for path in entry.path.parent.glob(entry.path.name + "*"):
                    path.unlink()
    assert killed >= 1, "no kill landed before the backup finished"
    if kind == "incremental":  # the whole chain still rebuilds the live database
        assert info.metadata["base_full"] == full.name
        restore_backup(Path(info.backup_path), tmp_path / "restored.db")
        assert content_digest(tmp_path / "restored.db") == content_digest(live)
    record_kills(
        figures, f"backup ({kind})", chosen, killed, temp_files_cleaned_by_next_run=cleaned
    )


# ---------------------------------------------------------------------------- prune


@pytest.fixture(scope="module")
def backup_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten backups of a small ledger: three chains of fulls, incrementals and a differential."""
    root = tmp_path_factory.mktemp("prune")
    db = root / "ledger.db"
    create_sample_ledger(db, 300, seed=4, nodes=8)
    backups = root / "backups"
    kinds = ["full", "incremental", "incremental", "incremental", "full"]
    kinds += ["incremental", "differential", "incremental", "full", "incremental"]
    for n, kind in enumerate(kinds):
        create_sample_ledger(db, 5, seed=200 + n, append=True)
        create_backup(db, backups, kind=kind)
    return backups


def test_sigkill_during_prune(backup_set: Path, tmp_path: Path, figures: Figures) -> None:
    reference_dir = tmp_path / "reference"
    shutil.copytree(backup_set, reference_dir)
    prune_backups(reference_dir, RetentionPolicy(keep_last=2))
    kept = visible_files(reference_dir)
    assert len(kept) < len(visible_files(backup_set))
    probe = tmp_path / "probe"
    shutil.copytree(backup_set, probe)
    reference = run_child(PRUNE_OP, probe, 2)
    assert not reference.killed and reference.result > 0

    seed, rng = new_rng()
    killed = 0
    chosen = kill_points(rng, points(3), reference)
    for n, point in enumerate(chosen):
        context = f"seed={seed} kill {n} at {point}"
        work = tmp_path / f"work{n}"
        shutil.copytree(backup_set, work)

        killed += kill_at(PRUNE_OP, point, work, 2)

        # Nothing the policy keeps is lost, and whatever still looks valid is valid.
        assert set(kept) <= set(visible_files(work)), context
        assert_complete_backups(work, context, set())
        prune_backups(work, RetentionPolicy(keep_last=2))  # the next run
        assert visible_files(work) == kept, context
        assert hidden_leftovers(work) == [], context
        shutil.rmtree(work)
    assert killed >= 1
    record_kills(figures, "prune", chosen, killed)


# ---------------------------------------------------------------------------- export


def sha3(path: Path) -> str:
    return hashlib.sha3_256(path.read_bytes()).hexdigest()


def assert_exports_complete(directory: Path, context: str) -> int:
    """Every export with a manifest is complete: its files are there with their checksums.
    Returns how many exports lack a manifest (incomplete, or a dump killed just before)."""
    incomplete = 0
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            manifest_file = entry / "manifest.json"
            if not manifest_file.is_file():
                assert not any(entry.iterdir()), f"{context}: partial export {entry.name}"
                incomplete += 1
                continue
            tables = json.loads(manifest_file.read_text())["tables"]
            for table in tables.values():
                assert sha3(entry / table["file"]) == table["sha3_256"], context
        elif entry.suffix == ".sql":
            manifest_file = entry.with_name(entry.name + ".manifest.json")
            if manifest_file.is_file():
                assert sha3(entry) == json.loads(manifest_file.read_text())["file"]["sha3_256"]
            else:  # published, then killed before its manifest: still a whole dump
                assert entry.read_bytes().rstrip().endswith(b"COMMIT;"), context
                incomplete += 1
    return incomplete


@pytest.mark.parametrize("fmt", ["sql", "parquet"])
def test_sigkill_during_export(
    source_ledger: Path, tmp_path: Path, fmt: str, figures: Figures
) -> None:
    live = copy_of(source_ledger, tmp_path / "live")
    exports = tmp_path / "exports"
    before = content_digest(live)
    reference = run_child(EXPORT_OP, live, exports, fmt)
    assert not reference.killed
    seed, rng = new_rng()
    killed = cleaned = 0
    chosen = kill_points(rng, points(3), reference)
    for n, point in enumerate(chosen):
        context = f"seed={seed} kill {n} at {point}"

        killed += kill_at(EXPORT_OP, point, live, exports, fmt)

        assert integrity(live) == ["ok"], context
        assert content_digest(live) == before, context
        assert_exports_complete(exports, context)
        cleaned += bool(hidden_leftovers(exports))
        result = export_database(fmt, database=live, export_dir=exports)  # the next run
        assert hidden_leftovers(exports) == [], f"{context}: temp files of the killed run remain"
        assert assert_exports_complete(exports, context) <= (1 if fmt == "sql" else 0), context
        assert Path(result.manifest_path).is_file()
        for entry in exports.iterdir():  # keep the directory small
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    assert killed >= 1
    record_kills(figures, f"export ({fmt})", chosen, killed, temp_files_cleaned_by_next_run=cleaned)


# ---------------------------------------------------------------------------- import-sql


def test_sigkill_during_import_sql(source_ledger: Path, tmp_path: Path, figures: Figures) -> None:
    other = copy_of(source_ledger, tmp_path / "other")
    shrink_ledger(other, 3000)
    dump = tmp_path / "ledger.sql"
    export_database("sql", database=other, out=dump)
    imported = content_digest(other)
    original = content_digest(source_ledger)
    assert imported != original

    probe = copy_of(source_ledger, tmp_path / "probe")
    reference = run_child(IMPORT_OP, dump, probe)
    assert not reference.killed and content_digest(probe) == imported
    seed, rng = new_rng()
    outcomes: dict[str, int] = {"old": 0, "new": 0}
    killed = 0
    chosen = kill_points(rng, points(3), reference)
    for n, point in enumerate(chosen):
        context = f"seed={seed} kill {n} at {point}"
        live_dir = tmp_path / f"live{n}"
        live = copy_of(source_ledger, live_dir)

        killed += kill_at(IMPORT_OP, point, dump, live)

        assert integrity(live) == ["ok"], context
        state = content_digest(live)
        assert state in (original, imported), f"{context}: neither the old nor the new state"
        outcomes["new" if state == imported else "old"] += 1
        import_sql(dump, live)  # the next run
        assert content_digest(live) == imported, context
        assert hidden_leftovers(live_dir) == [], f"{context}: temp files of the killed run remain"
        shutil.rmtree(live_dir)
    assert killed >= 1
    record_kills(
        figures,
        "import-sql",
        chosen,
        killed,
        left_old_state=outcomes["old"],
        left_new_state=outcomes["new"],
    )
