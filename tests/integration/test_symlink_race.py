"""Issue #20: an account that can write inside BACKUP_DIR swaps a subdirectory for a
symbolic link to a directory outside it while backups, an export and a cleanup write
there. Every run either succeeds inside BACKUP_DIR or fails with a clear error; nothing
(no ledger copy, no lock file, no journal line, no temp file) ever lands outside.

The swap runs in a tight loop in a thread: ``race`` is moved aside (``.aside-N``, still
inside BACKUP_DIR), a symbolic link ``race -> outside`` takes its place, then the
directory comes back. Runs that start while ``race`` is missing create it (inside)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dagvault.errors import DagvaultError
from tests._api import TOKEN, api_server
from tests._helpers import make_odd_ledger

ROUNDS = 6  # rounds of concurrent runs: the swap loop gets thousands of chances per round


@contextlib.contextmanager
def swapping(race: Path, outside: Path) -> Iterator[list[int]]:
    """Swap ``race`` (a directory) for a symbolic link to ``outside`` until the block ends;
    yields [swaps done] (the test checks the attack really ran)."""
    stop, swaps = threading.Event(), [0]

    def loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            aside = race.with_name(f".aside-{n}")
            with contextlib.suppress(OSError):
                os.rename(race, aside)
            with contextlib.suppress(OSError):
                os.symlink(outside, race)
                swaps[0] += 1
            time.sleep(0.001)  # half of the time the link is there, half the directory
            if race.is_symlink():
                with contextlib.suppress(OSError):
                    os.unlink(race)
            with contextlib.suppress(OSError):
                os.rename(aside, race)  # fails if a run created a new `race` meanwhile
            time.sleep(0.001)

    race.mkdir()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield swaps
    finally:
        stop.set()
        thread.join()
        if race.is_symlink():
            race.unlink()


def _outcomes(jobs: list[Callable[[], object]]) -> list[object]:
    """Run ``jobs`` at once; each one's result or the DagvaultError it raised."""

    def attempt(job: Callable[[], object]) -> object:
        try:
            return job()
        except DagvaultError as exc:
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(attempt, jobs))


def _everything_in(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The attacker's directory: writable, empty, outside every configured directory."""
    target = tmp_path / "outside"
    target.mkdir()
    return target


def test_core_runs_never_write_through_a_swapped_directory(tmp_path: Path, outside: Path) -> None:
    from dagvault.backup import create_backup
    from dagvault.export.run import export_database
    from dagvault.retention import cleanup_old_backups
    from dagvault.safedir import confined

    ledger = make_odd_ledger(tmp_path / "node-ledger.db", transactions=40)
    root = tmp_path / "backups"
    root.mkdir()
    race = root / "race"

    def in_root(run: Callable[[], object]) -> Callable[[], object]:
        def confined_run() -> object:
            with confined(root):  # as the API runs the core: race is below BACKUP_DIR
                return run()

        return confined_run

    backup = in_root(lambda: create_backup(ledger, race, name="node"))
    export = in_root(lambda: export_database("jsonl", database=ledger, export_dir=race))
    cleanup = in_root(lambda: cleanup_old_backups(race, keep=2))
    results: list[object] = []
    with swapping(race, outside) as swaps:
        for _ in range(ROUNDS):
            results += _outcomes([backup, backup, backup, export, cleanup, backup])
    results += _outcomes([backup, export])  # the directory stays put now: these succeed
    assert swaps[0] > 0
    assert _everything_in(outside) == []
    failures = [r for r in results if isinstance(r, DagvaultError)]
    for failure in failures:  # a clear error, naming the directory, never a /proc path
        assert failure.message and "/proc/" not in failure.message, failure.message
    assert not isinstance(results[-2], DagvaultError) and not isinstance(results[-1], Exception)
    written = [Path(r.backup_path) for r in results if hasattr(r, "backup_path")]
    written += [Path(r.export_path) for r in results if hasattr(r, "export_path")]
    names = {p.name for p in _everything_in(root)}
    names |= {Path(f).name for r in results for f in getattr(r, "removed_files", [])}
    for path in written:  # reported under BACKUP_DIR's name, and there (moved aside or not)
        assert path.is_relative_to(root) and "/proc/" not in str(path)
        assert path.name in names  # (unless a cleanup removed it since)


def test_http_requests_never_write_through_a_swapped_directory(
    prefect_api_url: str, tmp_path: Path, outside: Path
) -> None:
    workdir = tmp_path / "node"
    workdir.mkdir()
    make_odd_ledger(workdir / "blockchain.db", transactions=40)
    for area in ("backups", "exports"):
        (workdir / area).mkdir()
    backup = ("/backup", {"backup_path": "./backups/race/node", "quality": False})
    export = ("/backup/export", {"export_path": "./exports/race/", "format": "csv"})
    with (
        api_server(workdir, prefect_api_url, token=TOKEN) as server,
        server.client(TOKEN) as http,
    ):

        def post(request: tuple[str, dict[str, object]]) -> httpx.Response:
            return http.post(request[0], json={**request[1], "quality": False})

        with (
            swapping(workdir / "backups" / "race", outside) as backup_swaps,
            swapping(workdir / "exports" / "race", outside) as export_swaps,
            ThreadPoolExecutor(4) as pool,
        ):
            answers = [a for _ in range(2) for a in pool.map(post, [backup] * 3 + [export])]
        after = [post(backup), post(export)]  # the directories stay put now: these succeed
        log = server.log.read_text()
    assert backup_swaps[0] > 0 and export_swaps[0] > 0
    assert _everything_in(outside) == []
    for answer in answers:  # succeeded, or refused with a clear error (never a 500)
        assert answer.status_code != 500, answer.text + "\n" + log[log.find("Unexpected") :][:5000]
        if answer.status_code != 200:
            assert answer.json()["error"], answer.text
            assert "/proc/" not in answer.text
    assert [a.status_code for a in after] == [200, 200], [a.text for a in after]
    assert "Traceback" not in log
