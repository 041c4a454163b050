"""A run that dies gives back what it holds, and takes its temporary Prefect server along.

Backup and restore runs are SIGKILLed at random moments while they hold the database's
Prefect concurrency limit; the next run of that database must not wait on them (before,
it waited 4 hours on a temporary server and up to the 300 s lease on a persistent one).
Each CLI command here runs on the real Prefect server of the test session, or, as a
user's would without PREFECT_API_URL, on its own temporary server (one PREFECT_HOME
shared by all of them), which must die with the command.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _api import free_port
from _helpers import make_odd_ledger, write_odd_ledger_config

from dagvault.backup import create_backup

# The next run's flow (its wait for the limit, then a backup of a few MB): far below the
# 4 h (or 300 s) it used to wait, with room for a loaded machine.
NEXT_RUN_SECONDS = 60


def _env(prefect_home: Path | None, api_url: str | None) -> dict[str, str]:
    """The environment of a user's run: no analytics setting, no API URL unless given."""
    env = dict(os.environ)
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


def _holds_lease(prefect_home: Path, pid: int) -> bool:
    for path in (prefect_home / "dagvault-holders").glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if entry["pid"] == pid and entry["lease"]:
            return True
    return False


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _gone(pid: int) -> bool:
    """Exited (a zombie that nobody reaped counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _kill_while_holding(
    args: list[str], env: dict[str, str], cwd: Path, rng: random.Random
) -> list[int]:
    """Start `dagvault ARGS`, SIGKILL it at a random moment while it holds its Prefect
    limit; return the pids of its children at that moment."""
    home = Path(env["PREFECT_HOME"])
    log = cwd / f"killed-{args[0]}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagvault_cli", *args], cwd=cwd, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 300
        while not _holds_lease(home, process.pid):
            assert process.poll() is None, f"ended before holding its limit:\n{log.read_text()}"
            assert time.monotonic() < deadline, "never held its limit"
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        children = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, "finished before the kill: kill earlier"
    return children


def _flow_seconds(output: str) -> float:
    """From the start of the flow run to its end, by its log (a temporary server's start-up
    comes before it)."""

    def at(event: str) -> float:
        (stamp,) = re.findall(rf"^(\d\d):(\d\d):(\d\d\.\d+) \|.*Flow run .*{event}", output, re.M)
        return int(stamp[0]) * 3600 + int(stamp[1]) * 60 + float(stamp[2])

    return (at("Finished in state") - at("Beginning flow run")) % 86400


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dagvault_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def _quiet(output: str) -> None:
    assert "Traceback" not in output, output
    assert "ERROR" not in output, output


@pytest.fixture
def odd(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An odd ledger, its config, and a backup of it to restore."""
    db = make_odd_ledger(tmp_path / "node-ledger.db")
    config = write_odd_ledger_config(tmp_path)
    backup = create_backup(db, tmp_path / "backups").backup_path
    return db, config, Path(backup)


def _killed_then_next(
    tmp_path: Path, env: dict[str, str], odd: tuple[Path, Path, Path], seed: int
) -> tuple[list[int], str, float]:
    db, config, backup = odd
    rng = random.Random(seed)
    common = ["--config", str(config), "--db", str(db)]
    children = _kill_while_holding(
        ["backup", *common, "--backup-dir", "backups"], env, tmp_path, rng
    )
    children += _kill_while_holding(["restore", str(backup), *common], env, tmp_path, rng)
    output = _run(
        # -v and INFO: the flow run's start and end lines, to time the run itself
        ["backup", *common, "--backup-dir", "backups", "--no-quality", "-v"],
        {**env, "PREFECT_LOGGING_LEVEL": "INFO"},
        tmp_path,
        600,
    )
    return children, output, _flow_seconds(output)


def test_a_killed_run_does_not_block_the_next_on_a_persistent_server(
    prefect_api_url: str, tmp_path: Path, odd: tuple[Path, Path, Path]
) -> None:
    env = _env(Path(os.environ["PREFECT_HOME"]), prefect_api_url)
    _, output, seconds = _killed_then_next(tmp_path, env, odd, seed=1)
    assert seconds < NEXT_RUN_SECONDS, output
    _quiet(output)


def test_a_killed_run_frees_its_limit_and_takes_its_temporary_server_along(
    tmp_path: Path, odd: tuple[Path, Path, Path]
) -> None:
    db, config, _ = odd
    env = _env(tmp_path / "prefect-home", None)
    # The first run on a new PREFECT_HOME (its gate included) is quiet, and the runs after it
    # find the limits it made: no duplicate insert, no IntegrityError traceback, and no
    # telemetry ERROR though analytics are not switched off.
    args = ["backup", "--config", str(config), "--db", str(db), "--backup-dir", "backups"]
    _quiet(_run(args, env, tmp_path, 600))
    servers, output, seconds = _killed_then_next(tmp_path, env, odd, seed=2)
    assert seconds < NEXT_RUN_SECONDS, output
    _quiet(output)
    assert servers, "each killed command had a temporary server as its child"
    deadline = time.monotonic() + 30
    while not all(map(_gone, servers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(map(_gone, servers)), "a temporary Prefect server outlived its killed command"


def test_a_temporary_server_that_cannot_start_is_a_clear_error_quoting_its_log(
    tmp_path: Path, odd: tuple[Path, Path, Path]
) -> None:
    """Its output goes to a log under PREFECT_HOME (not the command's terminal, where what it
    logs as it is stopped looked like the command's failure); a start that fails quotes it."""
    db = odd[0]
    home = tmp_path / "prefect-home"
    env = {
        **_env(home, None),
        # A database the server cannot create: it exits at start.
        "PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:////proc/no-such/prefect.db",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "5",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dagvault_cli", "backup", "--db", str(db), "--backup-dir", "new"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = home / "dagvault-temporary-server.log"
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Error: Prefect's temporary server did not start" in proc.stderr, proc.stderr
    assert f"its log {log} ends with: " in proc.stderr and "Try: " in proc.stderr
    assert log.stat().st_mode & 0o077 == 0 and "Traceback" in log.read_text()
    assert not (tmp_path / "new").exists()  # refused before anything was written


def test_the_api_s_temporary_server_needs_a_secret_and_ends_with_the_api(tmp_path: Path) -> None:
    env = {**_env(tmp_path / "prefect-home", None), "DATABASE_PATH": "./blockchain.db"}
    env.pop("DAGVAULT_API_TOKEN", None)
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "dagvault_cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", api)
        (server,) = _children(api.pid)
        argv = Path(f"/proc/{server}/cmdline").read_text().split("\0")
        prefect = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/api"
        assert httpx.get(f"{prefect}/health", timeout=10).status_code == 200
        limits = httpx.post(f"{prefect}/v2/concurrency_limits/filter", json={}, timeout=10)
        assert limits.status_code == 401  # no secret: no run history, no limits to change
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=60)
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
    deadline = time.monotonic() + 30
    while not _gone(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(server), "the API's temporary Prefect server outlived the API"


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, "the API exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.2)
