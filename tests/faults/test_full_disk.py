"""A full disk during backup, export and restore: a clean error with the remedy, no
partial file, nothing lost, and the same run succeeds once space is back.

The disk is a small tmpfs mounted in a private mount namespace of the child
(``unshare -m``: nothing leaks to the host when the child ends) where the machine
allows it (root); elsewhere a file size limit (RLIMIT_FSIZE, writes fail with EFBIG).
The child runs the whole scenario (fill, fail, free space, retry) and reports what it saw.
"""

from __future__ import annotations

import functools
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _helpers import content_digest

from dagvault.backup import create_backup
from dagvault.sample import create_sample_ledger
from faults._harness import Figures

# argv: mode (tmpfs|rlimit), budget bytes, mount dir, operation source, ARGS...
# The operation source defines prepare() (before the limit), run() and state().
_DISK_CHILD = r"""
import json, os, resource, signal, sqlite3, subprocess, sys
from contextlib import closing
from pathlib import Path
from dagvault.digest import database_digest
from dagvault.errors import DagvaultError
mode, budget, MOUNT, source = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
ARGS = sys.argv[5:]

def digest(path):
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return database_digest(conn), conn.execute("PRAGMA integrity_check").fetchone()[0]

def files(directory):  # what an operation left: not the locks nor the operations journal
    return sorted(
        p.name
        for p in Path(directory).iterdir()
        if not p.name.endswith(("dagvault.lock", ".dagvault-operations.jsonl"))
    )

def space(limited):
    if mode == "tmpfs":
        st = os.statvfs(MOUNT)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        size = used + budget if limited else 1 << 30
        subprocess.run(["mount", "-o", f"remount,size={size}", str(MOUNT)], check=True)
    else:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (budget if limited else hard, hard))

def attempt():
    try:
        return {"ok": True, "result": run()}
    except DagvaultError as exc:
        return {"ok": False, "type": type(exc).__name__, "exit_code": exc.exit_code,
                "message": exc.message, "hint": exc.hint}

if mode == "tmpfs":
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(MOUNT)], check=True)
else:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
exec(source)
prepare()
space(True)
report = {"full": attempt(), "after_failure": state()}
space(False)
report["retry"] = attempt()
report["after_retry"] = state()
print(json.dumps(report), flush=True)
"""

BACKUP_OP = """
from dagvault.backup import create_backup
def prepare():
    pass
def run():
    return create_backup(Path(ARGS[0]), MOUNT / "backups").backup_path
def state():
    backups = MOUNT / "backups"
    return {"files": files(backups) if backups.is_dir() else [], "live": digest(ARGS[0])}
"""
EXPORT_OP = """
from dagvault.export import export_database
def prepare():
    pass
def run():
    exported = export_database(ARGS[1], database=Path(ARGS[0]), export_dir=MOUNT / "exports")
    return exported.export_path
def state():
    exports = MOUNT / "exports"
    return {"files": files(exports) if exports.is_dir() else [], "live": digest(ARGS[0])}
"""
RESTORE_OP = """
import shutil
from dagvault.restore import restore_backup
from dagvault.verify import verify_file
def prepare():
    shutil.copyfile(ARGS[1], MOUNT / "live.db")
def run():
    return restore_backup(Path(ARGS[0]), MOUNT / "live.db").pre_restore_backup
def state():
    pre = [p for p in MOUNT.iterdir() if ".pre_restore_" in p.name and not p.name.endswith(".meta")]
    return {"files": files(MOUNT), "live": digest(MOUNT / "live.db"),
            "pre_restore_backups_valid": [verify_file(p).ok for p in pre]}
"""


@functools.cache
def disk_mode() -> str:
    """tmpfs where this machine lets us mount one in a private namespace, else rlimit."""
    if shutil.which("unshare") is None:
        return "rlimit"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return "tmpfs" if probe.returncode == 0 else "rlimit"


def run_scenario(tmp_path: Path, operation: str, budget: int, *args: object) -> dict[str, Any]:
    mount = tmp_path / "disk"
    mount.mkdir()
    mode = disk_mode()
    command = [sys.executable, "-c", _DISK_CHILD, mode, str(budget), str(mount), operation]
    command += map(str, args)
    if mode == "tmpfs":
        command = ["unshare", "-m", "--propagation", "private", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["mode"] = mode
    return report


def assert_clean_failure(report: dict[str, Any], where: str) -> None:
    failure = report["full"]
    assert failure["ok"] is False, report
    assert failure["exit_code"] == 6, failure
    assert failure["hint"], failure
    assert where in failure["message"], failure
    if report["mode"] == "tmpfs":
        assert failure["type"] == "DiskFull", failure
        assert "Free up disk space" in failure["hint"]


def record(figures: Figures, operation: str, report: dict[str, Any]) -> None:
    figures.add(
        "Full disk",
        operation=operation,
        filesystem="tmpfs (ENOSPC)" if report["mode"] == "tmpfs" else "RLIMIT_FSIZE (EFBIG)",
        error=f"{report['full']['type']}, exit {report['full']['exit_code']}",
        partial_files_left=0,
        retry_after_space_returns="ok",
        faults_injected=1,
        faults_detected=1,
        data_lost=0,
    )


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("disk") / "blockchain.db"
    create_sample_ledger(path, 2_000, seed=13, nodes=16)
    return path


def test_full_disk_during_backup(ledger_file: Path, tmp_path: Path, figures: Figures) -> None:
    before = content_digest(ledger_file)
    report = run_scenario(tmp_path, BACKUP_OP, ledger_file.stat().st_size // 2, ledger_file)

    assert_clean_failure(report, "backups")
    assert report["after_failure"]["files"] == [], report  # no data file, sidecar or temp
    assert report["after_retry"]["live"][0] == before and report["after_retry"]["live"][1] == "ok"
    assert report["retry"]["ok"], report
    assert len(report["after_retry"]["files"]) == 2  # the backup and its .meta
    record(figures, "backup", report)


@pytest.mark.parametrize("fmt", ["sql", "parquet"])
def test_full_disk_during_export(
    ledger_file: Path, tmp_path: Path, fmt: str, figures: Figures
) -> None:
    before = content_digest(ledger_file)
    report = run_scenario(tmp_path, EXPORT_OP, ledger_file.stat().st_size // 4, ledger_file, fmt)

    assert_clean_failure(report, "exports")
    assert report["after_failure"]["files"] == [], report  # no dump, dataset or temp
    assert report["after_failure"]["live"][0] == before
    assert report["retry"]["ok"], report
    assert report["after_retry"]["files"], report
    record(figures, f"export ({fmt})", report)


@pytest.fixture(scope="module")
def bigger_backup(ledger_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup of a ledger twice the size of ``ledger_file``."""
    root = tmp_path_factory.mktemp("bigger")
    db = root / "bigger.db"
    shutil.copyfile(ledger_file, db)
    create_sample_ledger(db, 2_000, seed=14, append=True)
    return Path(create_backup(db, root / "backups").backup_path)


@pytest.mark.parametrize("stage", ["pre-restore backup", "copy"])
def test_full_disk_during_restore(
    ledger_file: Path, bigger_backup: Path, tmp_path: Path, stage: str, figures: Figures
) -> None:
    size = ledger_file.stat().st_size
    # The pre-restore backup needs the live database's size again; the copy needs the
    # backup's (twice that) in the WAL or journal on top.
    budget = size // 2 if stage == "pre-restore backup" else size * 5 // 4
    before = content_digest(ledger_file)
    with closing(sqlite3.connect(bigger_backup)) as conn:
        assert conn.execute("PRAGMA page_count").fetchone()[0] * 4096 > size * 3 // 2

    report = run_scenario(tmp_path, RESTORE_OP, budget, bigger_backup, ledger_file)

    assert_clean_failure(report, "")
    failed = report["after_failure"]
    assert failed["live"] == [before, "ok"], report  # nothing lost, nothing half-restored
    assert not [name for name in failed["files"] if name.startswith(".")], report  # no temp
    assert all(failed["pre_restore_backups_valid"]), report
    if stage == "pre-restore backup":
        assert failed["pre_restore_backups_valid"] == [], report
    assert report["retry"]["ok"], report
    assert report["after_retry"]["live"] == [content_digest(bigger_backup), "ok"]
    record(figures, f"restore (full at the {stage})", report)
