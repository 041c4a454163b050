"""Continuous protection under a live writer: RPO lag, the writer's commit latency, RTO, and
Litestream side by side on the same ledger.

One run, in a scratch directory:

1. a sample ledger (``--transactions``, 20 000 by default) and a first full backup;
2. a writer process appends ``--rate`` transactions a second (20; 2.4 KB signatures, one
   commit each, as a node does) for ``--idle`` seconds alone: its idle commit latency;
3. then, for ``--duration`` seconds (600), `dagvault watch` and `litestream replicate` to a
   file replica, both on that ledger. As `dagvault up` runs it: a Prefect server, the
   deployments served (`dagvault serve-deployments`) and the watcher sending its events,
   so the incremental-backup deployment's triggers start the backups (``--mode triggers``);
   or the watcher taking the backups itself (``--mode watcher``);
4. the writer stops; the newest backup is restored with `dagvault restore` and the replica
   with `litestream restore`, each ``--restores`` times (3) into new files, timed end to end
   as a user runs them against the node's Prefect server.

RPO lag at a moment t: how long ago the oldest transaction committed that the newest backup
finished by t lacks (0 when it lacks none); sampled every second from the watcher's first
backup on (the start-up before it is not steady state). The writer logs each commit (id,
time, latency), and each backup's `.meta` says how many transactions it holds, so a backup's
content is known without opening it. BACKUP_MAX_LOAD_PER_CPU is 0 here: the load of a shared
benchmark machine is not the node's.

    python -m benchmarks.rpo_bench [--duration 600] [--idle 60] [--rate 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from dagvault.catalog import list_backups
from dagvault.sample import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, create_sample_ledger

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def write(database: Path, log: Path, rate: float, seconds: float) -> None:
    """The writer process: one transaction per commit, ``rate`` a second, each logged as
    ``id commit_end_unix_time latency_seconds``."""
    rng = random.Random(7)
    with closing(sqlite3.connect(database, isolation_level=None, timeout=60)) as conn:
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL's usual setting on a node
        senders = [row[0] for row in conn.execute("SELECT sender FROM transactions LIMIT 200")]
        validators = [row[0] for row in conn.execute("SELECT node_id FROM nodes")]
        next_id = conn.execute("SELECT max(id) FROM transactions").fetchone()[0] + 1
        start = time.monotonic()
        with open(log, "w", buffering=1) as out:
            n = 0
            while (due := start + n / rate) < start + seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                began = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (
                        next_id,
                        rng.randbytes(32).hex(),
                        rng.choice(senders),
                        rng.choice(senders),
                        rng.randrange(10**9),
                        100 + rng.randrange(1000),
                        next_id,
                        int(time.time()),
                        rng.randbytes(SIGNATURE_SIZE),
                        rng.randbytes(PUBLIC_KEY_SIZE),
                        rng.choice(validators),
                    ),
                )
                conn.execute(
                    "INSERT INTO transaction_parents VALUES (?, ?)", (next_id, next_id - 1)
                )
                conn.execute("COMMIT")
                latency = time.perf_counter() - began
                out.write(f"{next_id} {time.time():.4f} {latency:.6f}\n")
                next_id += 1
                n += 1


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_API_URL": (work / "prefect-url").read_text(),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "BACKUP_MAX_LOAD_PER_CPU": "0",
        "DATABASE_PATH": str(work / "ledger.db"),
        "BACKUP_DIR": str(work / "backups"),
        "DAGVAULT_REPORTS_DIR": str(work / "reports"),
    }


def _start(stack: ExitStack, work: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """A background process, logged to NAME.log, stopped (SIGTERM) when ``stack`` closes."""
    log = stack.enter_context((work / f"{name}.log").open("wb"))
    env = _env(work) if (work / "prefect-url").exists() else os.environ
    process = subprocess.Popen(list(args), env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(process.wait, 120)
    stack.callback(process.send_signal, signal.SIGTERM)
    return process


def _prefect_server(stack: ExitStack, work: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    server = _start(
        stack,
        work,
        "prefect-server",
        *(str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)),
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log = work / "prefect-server.log"
                raise RuntimeError(f"the Prefect server did not start: {log}") from None
            time.sleep(1)
    (work / "prefect-url").write_text(url)


def _cli(work: Path, *args: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dagvault_cli", *args],
        env=_env(work),
        cwd=work,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def _backups(work: Path) -> dict[str, int]:
    """Each finished backup's name and its transaction count."""
    return {
        e.path.name: e.info.total_transactions
        for e in list_backups(work / "backups")
        if e.info is not None
    }


def _commits(log: Path) -> list[tuple[int, float, float]]:
    rows = []
    for line in log.read_text().splitlines():
        tx, at, latency = line.split()
        rows.append((int(tx), float(at), float(latency)))
    return rows


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


def _lags(
    commits: list[tuple[int, float, float]], finished: list[tuple[float, int]], end: float
) -> list[float]:
    """The RPO lag every second from the first backup on (see the module's docstring)."""
    committed = {tx: at for tx, at, _ in commits}
    lags = []
    t = finished[0][0]
    while t <= end:
        held = max(count for at, count in finished if at <= t)
        first_missing = committed.get(held + 1)
        lags.append(t - first_missing if first_missing is not None and first_missing <= t else 0)
        t += 1.0
    return lags


def _litestream_config(work: Path) -> Path:
    config = work / "litestream.yml"
    config.write_text(
        f"dbs:\n  - path: {work / 'ledger.db'}\n    replica:\n"
        f"      type: file\n      path: {work / 'litestream-replica'}\n"
    )
    return config


def _restore_times(work: Path, runs: int, config: Path | None) -> dict[str, Any]:
    newest = max(list_backups(work / "backups"), key=lambda e: e.timestamp).path
    dagvault, litestream = [], []
    for n in range(runs):
        dagvault.append(_cli(work, "restore", str(newest), "--db", str(work / f"rto-{n}.db")))
        if config is not None:
            restored = (str(work / f"ls-{n}.db"), str(work / "ledger.db"))
            began = time.perf_counter()
            subprocess.run(
                [str(BIN / "litestream"), "restore", "-config", str(config), "-o", *restored],
                check=True,
                capture_output=True,
            )
            litestream.append(time.perf_counter() - began)
    return {
        "newest_backup": newest.name,
        "dagvault_restore_seconds": dagvault,
        "litestream_restore_seconds": litestream,
    }


def _count(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])


def _protect(
    args: argparse.Namespace, work: Path, writer: subprocess.Popen[bytes]
) -> tuple[float, float, list[tuple[float, int]], Path | None]:
    """Watch (and replicate) while the writer writes: (start, end, finished backups, the
    Litestream config)."""
    cli = (sys.executable, "-m", "dagvault_cli")
    config = None if args.no_litestream else _litestream_config(work)
    with ExitStack() as stack:
        if args.mode == "triggers":
            # The served deployments are created with the triggers; the watcher starts
            # once they are, as `dagvault up` starts its parts in order.
            _start(stack, work, "serve", *cli, "serve-deployments")
            _wait_for_deployment(work)
        watch = ["watch", *(["--take-backups"] if args.mode == "watcher" else [])]
        watch += ["--quality"] if args.quality else []
        started = time.time()
        _start(stack, work, "watch", *cli, *watch)
        if config is not None:
            litestream = (str(BIN / "litestream"), "replicate", "-config", str(config))
            _start(stack, work, "litestream", *litestream)
        seen = _backups(work)
        finished: list[tuple[float, int]] = []
        while writer.poll() is None:
            for name, count in _backups(work).items():
                if name not in seen:
                    seen[name] = count
                    finished.append((time.time(), count))
            time.sleep(0.5)
        end = time.time()
        time.sleep(2)  # Litestream's sync interval is 1 s
    return started, end, finished, config


def _wait_for_deployment(work: Path) -> None:
    url = (
        f"{(work / 'prefect-url').read_text()}/deployments/name/dagvault-backup/incremental-backup"
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:  # 404 until it is served
            if time.monotonic() > deadline:
                raise RuntimeError(f"the deployments were not served: {work}/serve.log") from None
            time.sleep(2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dagvault-rpo-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "prefect").mkdir(exist_ok=True)
    (work / "prefect-url").unlink(missing_ok=True)
    db, log = work / "ledger.db", work / "commits.log"
    with ExitStack() as server:
        _prefect_server(server, work)
        create_sample_ledger(db, args.transactions)
        _cli(work, "backup", "--no-quality")
        load = (str(args.rate), str(args.idle + args.duration))
        writer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.rpo_bench", "--writer", str(db), str(log), *load],
            cwd=PROJECT,
        )
        time.sleep(args.idle)
        watched_from, end, finished, config = _protect(args, work, writer)
        restores = _restore_times(work, args.restores, config)
    litestream_lag = None
    commits = _commits(log)
    idle = [lat for _, at, lat in commits if at < watched_from]
    protected = [lat for _, at, lat in commits if at >= watched_from]
    lags = _lags(commits, finished, end) if finished else []
    if config is not None:
        litestream_lag = len(commits) + args.transactions - _count(work / "ls-0.db")
    result = {
        "mode": args.mode,
        "duration_seconds": args.duration,
        "rate_per_second": args.rate,
        "transactions_written": len(commits),
        "rpo_target_seconds": args.rpo_target,
        "backups_taken": len(finished),
        "first_backup_after_seconds": finished[0][0] - watched_from if finished else None,
        "rpo_lag_max_seconds": max(lags, default=None),
        "rpo_lag_p50_seconds": statistics.median(lags) if lags else None,
        "over_target_seconds": sum(1 for lag in lags if lag > args.rpo_target),
        "commit_p99_idle_ms": _p(idle, 99) * 1000,
        "commit_p99_protected_ms": _p(protected, 99) * 1000,
        "litestream_missing_transactions_at_stop": litestream_lag,
        "ledger_bytes_at_end": db.stat().st_size,
        **restores,
        "workdir": str(work),
    }
    (work / "rpo.json").write_text(json.dumps(result, indent=2))
    if not args.keep and not args.workdir:
        shutil.rmtree(work)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--writer"]:
        database, log, rate, seconds = argv[1:]
        write(Path(database), Path(log), float(rate), float(seconds))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rpo_bench")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds watched (600)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of writer alone (60)")
    parser.add_argument("--rate", type=float, default=20.0, help="transactions a second (20)")
    parser.add_argument("--transactions", type=int, default=20_000, help="initial ledger size")
    parser.add_argument("--rpo-target", type=int, default=60)
    parser.add_argument("--restores", type=int, default=3, help="timed restores of each tool")
    parser.add_argument("--quality", action="store_true", help="the quality gate on each backup")
    parser.add_argument("--no-litestream", action="store_true")
    parser.add_argument(
        "--mode",
        choices=("triggers", "watcher"),
        default="triggers",
        help="backups started by the deployment triggers (default) or by the watcher",
    )
    parser.add_argument("--workdir", help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    result = run(parser.parse_args(argv))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
