"""What a user waits for: each CLI command's wall time, end to end, in a fresh process.

Two modes, measured in the same run on the same ledger:

* ``cold``: no Prefect server configured (a new user's machine): every command that runs a
  flow starts Prefect's temporary server first.
* ``service``: ``dagvault up`` runs (its own Prefect server, the API, the deployments) and the
  command finds it through DAGVAULT_STATE_DIR and PREFECT_API_URL.
* ``fresh`` (not in the default ``--modes``): ``cold`` on a fresh machine, each run with a
  new, empty PREFECT_HOME (Prefect creates its database first): the first command a new
  user types.

Next to them, in the same run: ``sqlite3 .backup`` + ``openssl dgst -sha3-256`` (what an
operator scripts by hand), ``python -c "import prefect"`` and ``python -c "import
great_expectations"`` (the floor that importing the libraries puts under any command). Each
figure is the median of ``--rounds`` runs; commands alternate so that drifting load hits all.
The hand-scripted backup also runs in every round of each mode, between the commands, and
each command is reported as a multiple of it from the same rounds (on a 1 GB ledger the
disk's writeback drifts from minute to minute: measured apart, the ratio drifted with it).
In ``service`` mode one untimed round goes first: a node's service has been up for a while
when an operator types a command, not for the seconds in which it registers its deployments
and loads GX (that first round's times are printed apart).

    python -m benchmarks.cli_latency [--transactions 500 | --ledger FILE] [--rounds 5]
                                     [--workdir DIR] [--modes fresh,cold,service]
                                     [--only backup,...] [--json FILE]

``--ledger FILE`` measures on a copy of an existing ledger (taken through SQLite's backup
API), e.g. the 1 GB one of ``benchmarks.backup_bench``; ``--only`` picks commands by the
start of their names (``--only backup`` for a large ledger, where the others take minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _run(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark step failed: {' '.join(argv)} (exit {proc.returncode})\n{proc.stderr}"
        )
    return seconds


def _newest_backup(workdir: Path) -> str:
    backups = sorted((workdir / "backups").glob("*.db"), key=lambda p: p.stat().st_mtime)
    return str(backups[-1])


def commands(workdir: Path) -> dict[str, Callable[[], list[str]]]:
    """Each command as a user types it; built when run (restore needs the newest backup)."""
    cli = [PYTHON, "-m", "dagvault_cli"]
    return {
        "backup (with gate)": lambda: [*cli, "backup"],
        # What the gate costs on top, in the same run (on a large ledger: its SQL).
        "backup --no-quality": lambda: [*cli, "backup", "--no-quality"],
        "verify newest": lambda: [*cli, "verify", _newest_backup(workdir)],
        # Into the live ledger, as an operator restores: verified, with a pre-restore backup.
        "restore": lambda: [*cli, "restore", _newest_backup(workdir)],
        "export parquet": lambda: [
            *cli,
            "export",
            "--format",
            "parquet",
            "--out",
            str(workdir / "exports" / f"x{time.monotonic_ns()}"),
        ],
        "cleanup --dry-run": lambda: [*cli, "cleanup", "--keep", "1000", "--dry-run"],
        "list": lambda: [*cli, "list"],
    }


BACKUP_BASELINE = "sqlite3 .backup + openssl dgst"


def baselines(workdir: Path) -> dict[str, Callable[[], list[str]]]:
    copy = workdir / "baseline-copy.db"
    script = (
        f"rm -f {copy} && sqlite3 {workdir / 'blockchain.db'} '.backup {copy}' "
        f"&& openssl dgst -sha3-256 {copy} >/dev/null"
    )
    return {
        BACKUP_BASELINE: lambda: ["bash", "-c", script],
        'python -c "import prefect"': lambda: [PYTHON, "-c", "import prefect"],
        'python -c "import great_expectations"': lambda: [
            PYTHON,
            "-c",
            "import great_expectations",
        ],
    }


def _base_env(workdir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_API", "DAGVAULT_")) and k not in ("DATABASE_PATH",)
    }
    env.update(
        {
            "PREFECT_HOME": str(workdir / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "DAGVAULT_REPORTS_DIR": str(workdir / "reports"),
        }
    )
    return env


def _service_env(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    state = workdir / "state"
    info = json.loads((state / "service.json").read_text())
    return {
        **env,
        "DAGVAULT_STATE_DIR": str(state),
        "PREFECT_API_URL": info["prefect_api_url"],
        "PREFECT_API_AUTH_STRING": (state / "prefect-auth").read_text().strip(),
    }


def measure(
    steps: dict[str, Callable[[], list[str]]], env: dict[str, str], cwd: Path, rounds: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(rounds):
        order = list(steps) if index % 2 == 0 else list(reversed(steps))
        for name in order:
            times[name].append(_run(steps[name](), env, cwd))
    return {name: statistics.median(values) for name, values in times.items()}


def measure_fresh(
    steps: dict[str, Callable[[], list[str]]], env: dict[str, str], cwd: Path, rounds: int
) -> dict[str, float]:
    """``measure`` with a new, empty PREFECT_HOME for every run (a fresh machine)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(rounds):
        for name in steps:
            home = cwd / f"prefect-home-fresh-{index}-{len(times[name])}-{time.monotonic_ns()}"
            times[name].append(_run(steps[name](), {**env, "PREFECT_HOME": str(home)}, cwd))
            shutil.rmtree(home, ignore_errors=True)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli_latency")
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--modes", default="cold,service")
    parser.add_argument("--ledger", type=Path, help="measure on a copy of this ledger")
    parser.add_argument("--only", default="", help="commands whose names start with these")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    for tool in ("sqlite3", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: the baseline needs it")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="dagvault-latency-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    env = _base_env(workdir)
    sys.path.insert(0, str(PROJECT))
    from dagvault.sample import create_sample_ledger

    ledger = workdir / "blockchain.db"
    if args.ledger is not None and not ledger.exists():
        with sqlite3.connect(args.ledger) as source, sqlite3.connect(ledger) as copy:
            source.backup(copy)
    if not ledger.exists():
        create_sample_ledger(ledger, args.transactions, seed=42, nodes=16)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    # The hand-scripted backup runs in every round of every mode too, between the commands:
    # on a large ledger the disk's writeback varies from minute to minute, and a ratio holds
    # only against a baseline that met the same disk.
    steps = {BACKUP_BASELINE: baselines(workdir)[BACKUP_BASELINE]} | {
        name: argv
        for name, argv in commands(workdir).items()
        if not wanted or name.startswith(tuple(wanted))
    }
    _run([PYTHON, "-m", "dagvault_cli", "backup"], env, workdir)  # a backup to verify/restore

    load_before = os.getloadavg()[0]  # the machine is shared: note how busy it was
    figures: dict[str, dict[str, float]] = {
        "baseline": measure(baselines(workdir), env, workdir, args.rounds)
    }
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "fresh" in modes:
        figures["fresh"] = measure_fresh(steps, env, workdir, args.rounds)
    if "cold" in modes:
        figures["cold"] = measure(steps, env, workdir, args.rounds)
    if "service" in modes:
        ports = ["--api-port", str(_free_port()), "--prefect-port", str(_free_port())]
        service_env = {**env, "DAGVAULT_STATE_DIR": str(workdir / "state")}
        _run([PYTHON, "-m", "dagvault_cli", "up", *ports], service_env, workdir)
        try:
            service_env = _service_env(workdir, env)
            figures["service, first round"] = measure(steps, service_env, workdir, 1)
            figures["service"] = measure(steps, service_env, workdir, args.rounds)
        finally:
            _run([PYTHON, "-m", "dagvault_cli", "down"], service_env, workdir)
    size = f"{ledger.stat().st_size / 2**20:.0f} MiB"
    print(report(figures, size, args.rounds))
    print(f"\nload average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(figures: dict[str, dict[str, float]], size: str, rounds: int) -> str:
    """Seconds per mode, and each as a multiple of ``import prefect`` measured in the same run
    (the ratio survives a slower or busier machine; the seconds do not)."""
    modes = [m for m in ("fresh", "cold", "service, first round", "service") if m in figures]
    floor = figures["baseline"]['python -c "import prefect"']
    lines = [
        f"CLI latency, {size} ledger, median of {rounds} "
        "(wall seconds, fresh process each; x = multiple of `import prefect` in this run)",
        "",
        "| command | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    names = next((list(figures[m]) for m in modes), [])
    for name in names:
        cells = [f"{figures[m][name]:.2f} s ({figures[m][name] / floor:.1f}x)" for m in modes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| baseline | seconds |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in figures["baseline"].items()]
    lines += [
        "",
        f"Each command as a multiple of `{BACKUP_BASELINE}` measured in the same rounds:",
        "",
        "| command | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for name in names:
        if name != BACKUP_BASELINE:
            ratios = [f"{figures[m][name] / figures[m][BACKUP_BASELINE]:.2f}x" for m in modes]
            lines.append(f"| {name} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
