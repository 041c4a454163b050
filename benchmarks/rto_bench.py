"""RTO: how long a user waits for a restored, verified ledger, end to end through the CLI.

On a 1 GB sample ledger (``backup_bench``'s, built once in the work directory and reused;
never written to) copied to a node ledger, with a chain of a full backup and ``--chain``
incrementals (each after ``--append`` more transactions), one run measures:

1. ``restore --at NOW``: the newest recovery point, restored through its chain of
   incrementals into a new file (verification of every link, the rebuilt image, the copy, the
   post-check), as a user types it: a new ``dagvault`` process, a Prefect server running
   (PREFECT_API_URL, as under ``dagvault up``);
2. ``restore FULL``: the full backup alone, verification included, the same way;
3. the same two restores in-process (``dagvault.restore.restore_backup``), without the CLI's
   process start, Prefect import and flow run: what the CLI adds;
4. ``dagvault drill --no-quality``: the RTO a drill measures for the newest point (restore +
   integrity_check).

Each figure is the median of ``--rounds`` runs (alternating), every restore into a new file
on the ledger's filesystem, deleted after. The page cache is never dropped.

    python -m benchmarks.rto_bench [--transactions 200000] [--chain 20] [--append 200]
                                   [--rounds 3] [--workdir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from benchmarks.backup_bench import ensure_ledger
from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def prefect_server(workdir: Path) -> Iterator[dict[str, str]]:
    """A `prefect server start` of its own; yields the environment of the CLI runs."""
    port = _free_port()
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DAGVAULT_"))},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    with open(workdir / "prefect-server.log", "wb") as log:
        server = subprocess.Popen(
            [str(Path(PYTHON).parent / "prefect"), "server", "start", "--port", str(port)],
            env={**env, "PREFECT_UI_ENABLED": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/api"
            deadline = time.monotonic() + 180
            while not _healthy(url):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the Prefect server did not start; see {log.name}")
                time.sleep(0.5)
            yield {**env, "PREFECT_API_URL": url}
        finally:
            server.terminate()
            server.wait(timeout=60)


def build_chain(workdir: Path, source: Path, chain: int, append: int) -> tuple[Path, Path]:
    """The node ledger (a copy of ``source`` through SQLite's backup API) and its backups:
    a full one, then ``chain`` incrementals, ``append`` transactions apart."""
    node, backups = workdir / "node.db", workdir / "backups"
    for path in [node, *(backups.iterdir() if backups.is_dir() else [])]:
        path.unlink(missing_ok=True)
    print(f"copying {source.name} to {node} ...", flush=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(node)) as dst:
        src.backup(dst)
    started = time.perf_counter()
    create_backup(node, backups, kind="full")
    print(f"  full backup in {time.perf_counter() - started:.1f} s", flush=True)
    for _ in range(chain):
        create_sample_ledger(node, append, append=True)
        create_backup(node, backups, kind="incremental")
    newest = list_backups(backups)[0]
    assert newest.info is not None and newest.info.backup_type == "Incremental"
    print(f"  {chain} incrementals; newest {newest.path.name}", flush=True)
    return node, backups


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _cli(
    argv: Callable[[], Sequence[str]], env: dict[str, str], cwd: Path
) -> Callable[[], subprocess.CompletedProcess[str]]:
    """A ``dagvault`` command in a new process; its arguments are built when it runs."""

    def run() -> subprocess.CompletedProcess[str]:
        words = [PYTHON, "-m", "dagvault_cli", *argv()]
        done = subprocess.run(words, env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(words)} failed:\n{done.stderr}")
        return done

    return run


def _fresh(target: Path, run: Callable[[], object]) -> Callable[[], object]:
    """``run`` restoring into ``target``, a new file each time (removed before and after)."""

    def clear() -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        for stray in target.parent.glob(f".{target.name}.*"):
            stray.unlink(missing_ok=True)

    def fresh() -> object:
        clear()
        try:
            return run()
        finally:
            clear()

    return fresh


def measure(workdir: Path, backups: Path, env: dict[str, str], rounds: int) -> dict[str, float]:
    entries = list_backups(backups)
    full = next(e.path for e in entries if e.info and e.info.backup_type == "Full")
    newest = entries[0].path
    target = workdir / "restored.db"
    common = ["--db", str(target), "--backup-dir", str(backups)]
    steps = {
        "CLI restore --at NOW (newest point, through its chain)": _cli(
            lambda: ["restore", "--at", f"{time.time():.3f}", *common], env, workdir
        ),
        "CLI restore FULL (verified)": _cli(lambda: ["restore", str(full), *common], env, workdir),
        "in-process restore of the newest point (chain)": lambda: restore_backup(
            newest, target, pre_restore_backup=False
        ),
        "in-process restore of the full backup": lambda: restore_backup(
            full, target, pre_restore_backup=False
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(rounds):
        for name, step in steps.items():
            seconds = _timed(_fresh(target, step))
            times[name].append(seconds)
            print(f"  round {round_ + 1}: {name}: {seconds:.2f} s", flush=True)
    figures = {name: statistics.median(values) for name, values in times.items()}
    drill = ["drill", "--no-quality", "--json", "--db", str(workdir / "node.db"), *common[2:]]
    drilled = _cli(lambda: drill, env, workdir)()
    figures["drill: RTO of the newest point (restore + integrity_check)"] = json.loads(
        drilled.stdout
    )["rto_seconds"]
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--chain", type=int, default=20, help="incrementals in the chain")
    parser.add_argument("--append", type=int, default=200, help="transactions between them")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=PROJECT / ".demo" / "rto-bench")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source = ensure_ledger(workdir, args.transactions, rebuild=False)
    node, backups = build_chain(workdir, source, args.chain, args.append)
    with prefect_server(workdir) as env:
        figures = measure(workdir, backups, env, args.rounds)
    size = node.stat().st_size
    print(
        f"\nRTO on a {size / 1e9:.2f} GB ledger, {args.chain} incrementals in the chain "
        f"(median of {args.rounds}; {platform.node()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}):"
    )
    for name, seconds in figures.items():
        print(f"  {name:<66} {seconds:6.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"ledger_bytes": size, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
