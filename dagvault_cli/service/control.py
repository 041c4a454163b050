"""``dagvault up``, ``dagvault status`` and ``dagvault down``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.health import DEGRADED_EXIT
from dagvault.procs import pid_alive
from dagvault.recovery import iso
from dagvault_cli.output import emit_json, rpo_text
from dagvault_cli.service import probe
from dagvault_cli.service.state import ServiceInfo, StateDir, state_dir
from dagvault_cli.service.supervisor import (
    DRAIN_SECONDS,
    STOP_GRACE_SECONDS,
    Options,
    configure_logging,
    run,
    to_argv,
)

NOT_RUNNING_EXIT = 3
RPO_FIELDS = ("rpo_seconds", "rpo_target_seconds", "newest_recovery_point", "changed_since_newest")
# The operations in flight (at most DRAIN_SECONDS), then each part's own stop.
DOWN_TIMEOUT_SECONDS = DRAIN_SECONDS + 4 * STOP_GRACE_SECONDS


def _state(args: argparse.Namespace) -> StateDir:
    state = StateDir(state_dir(args.state_dir))
    if state.root.exists() and not state.root.is_dir():
        raise ConfigError(
            f"The state directory {state.root} is not a directory",
            "Point --state-dir (or DAGVAULT_STATE_DIR) at a directory, or at a path that does "
            "not exist yet.",
        )
    return state


# --- up ---------------------------------------------------------------------------------


def up(args: argparse.Namespace) -> int:
    # A bad configuration would fail every part and every scheduled run: fail now.
    load_settings(config_file=args.config)
    state = _state(args)
    state.prepare()
    running = state.read_info()
    if running is not None:
        print(f"dagvault is already running (supervisor pid {running.supervisor_pid})")
        _print_urls(state, running)
        return 0
    external = os.environ.get("PREFECT_API_URL") or None
    options = Options(
        state=state,
        api_host=args.api_host,
        api_port=args.api_port,
        prefect_port=args.prefect_port,
        prefect_api_url=external,
        config_file=os.path.abspath(args.config) if args.config else None,
        ready_timeout=args.timeout,
    )
    if not state.supervisor_alive():  # another `up` may be starting it right now
        _require_free_port(args.api_host, args.api_port, "--api-port", "the HTTP API")
        if external is None:
            _require_free_port("127.0.0.1", args.prefect_port, "--prefect-port", "Prefect")
        if args.foreground:
            configure_logging()
            return run(options)
        _start_in_background(state, options)
    info = _wait_until_up(state, args.timeout)
    print(f"dagvault is up (supervisor pid {info.supervisor_pid})")
    _print_urls(state, info)
    return 0


def _require_free_port(host: str, port: int, flag: str, what: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(f"Cannot listen on {host}:{port} for {what}: {exc}") from exc
            raise ConfigError(
                f"Port {port} on {host} is in use; {what} cannot listen there",
                f"Stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or choose "
                f"another port with {flag}.",
            ) from exc


def _start_in_background(state: StateDir, options: Options) -> None:
    with open(state.log_file("supervisor"), "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "dagvault_cli.service.supervisor", *to_argv(options)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in this terminal's process group: Ctrl-C spares it
        )


def _wait_until_up(state: StateDir, timeout: float) -> ServiceInfo:
    """Until the supervisor publishes service.json; its log explains a failed start."""
    deadline = time.monotonic() + timeout + 30.0  # the supervisor times out first
    seen_alive = False
    while time.monotonic() < deadline:
        info = state.read_info()
        if info is not None:
            return info
        alive = state.supervisor_alive()
        seen_alive = seen_alive or alive
        if not alive and (seen_alive or time.monotonic() > deadline - timeout):
            break
        time.sleep(0.25)
    log = state.log_file("supervisor")
    raise ConfigError(
        "dagvault did not start: " + _last_error(log),
        f"The logs in {state.logs} say more ({log.name} first).",
    )


def _last_error(log: Any) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log was written"
    errors = [line.split("dagvault.service: ", 1)[-1] for line in lines if " ERROR " in line]
    return errors[-1] if errors else "it stopped without saying why"


def _print_urls(state: StateDir, info: ServiceInfo) -> None:
    if info.prefect_ui_url:
        print(f"  Prefect UI : {info.prefect_ui_url}  (login: {state.prefect_auth_file})")
    print(f"  Prefect API: {info.prefect_api_url}")
    print(f"  HTTP API   : {info.api_url}  (token: {state.api_token_file})")
    print(f"  logs       : {state.logs}")


# --- status -----------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    state = _state(args)
    info = state.read_info() if state.root.is_dir() else None
    if info is None:
        if args.json:
            emit_json({"running": False, "state_dir": str(state.root)})
        else:
            print(f"dagvault is not running (state directory {state.root})")
            print("Start it with `dagvault up`.")
        return NOT_RUNNING_EXIT
    report = _status_report(state, info)
    if args.json:
        emit_json(report)
    else:
        _print_status(state, info, report)
    return 0 if report["status"] == "ok" else DEGRADED_EXIT


def _status_report(state: StateDir, info: ServiceInfo) -> dict[str, Any]:
    token = state.api_token()
    auth = (
        state.prefect_auth() if info.prefect_ui_url else os.environ.get("PREFECT_API_AUTH_STRING")
    )
    parts = {name: pid_alive(pid) for name, pid in info.children.items()}
    health = probe.api_health(info.api_url, token)
    prefect_ok = probe.prefect_healthy(info.prefect_api_url, auth)
    warnings = [
        f"{name} (pid {info.children[name]}) is not running"
        for name, up_ in parts.items()
        if not up_
    ]
    if health is None:
        warnings.append(f"the HTTP API at {info.api_url} does not answer")
    else:
        warnings += health.get("warnings", [])
    if not prefect_ok:
        warnings.append(f"the Prefect API at {info.prefect_api_url} does not answer")
    newest = _newest_backup(info, token) if health is not None else None
    return {
        "running": True,
        "status": "ok" if not warnings else "degraded",
        "state_dir": str(state.root),
        "supervisor_pid": info.supervisor_pid,
        "started_at": info.started_at,
        "parts": {
            name: {"pid": info.children[name], "running": up_} for name, up_ in parts.items()
        },
        "prefect_ui_url": info.prefect_ui_url,
        "prefect_api_url": info.prefect_api_url,
        "api_url": info.api_url,
        "newest_backup": newest,
        # What a failure now would lose (dagvault.rpo), as the API's /health measured it.
        **{key: (health or {}).get(key) for key in RPO_FIELDS},
        "next_scheduled_run": _next_run(info, auth) if prefect_ok else None,
        "operations_in_progress": (health or {}).get("operations_in_progress"),
        "warnings": warnings,
    }


def _newest_backup(info: ServiceInfo, token: str) -> dict[str, Any] | None:
    try:
        found = probe.api_get(info.api_url, token, "/backup/list?limit=1")
    except (OSError, ValueError):
        return None
    entries = found.get("data") if isinstance(found, dict) else None
    if not entries:
        return None
    entry = entries[0]
    return {key: entry.get(key) for key in ("backup_path", "timestamp", "backup_type")}


def _next_run(info: ServiceInfo, auth: str | None) -> dict[str, Any] | None:
    body = {
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 1,
    }
    try:
        runs = probe.prefect(info.prefect_api_url, auth, "/flow_runs/filter", body)
        if not runs:
            return None
        run_ = runs[0]
        deployment = None
        if run_.get("deployment_id"):
            found = probe.prefect(
                info.prefect_api_url, auth, f"/deployments/{quote(run_['deployment_id'])}"
            )
            deployment = found.get("name")
    except (OSError, ValueError):
        return None
    return {"deployment": deployment, "expected_start_time": run_.get("expected_start_time")}


def _print_status(state: StateDir, info: ServiceInfo, report: dict[str, Any]) -> None:
    print(f"dagvault is up since {info.started_at}: {report['status']}")
    print(f"  supervisor : pid {info.supervisor_pid}")
    for name, part in report["parts"].items():
        print(f"  {name:<11}: pid {part['pid']} ({'running' if part['running'] else 'DOWN'})")
    _print_urls(state, info)
    newest = report["newest_backup"]
    if newest:
        created = iso(newest["timestamp"])
        print(f"  newest backup: {newest['backup_path']} ({created}, {newest['backup_type']})")
        print(f"  RPO now    : {rpo_text(report)}")
    else:
        print("  newest backup: none")
    upcoming = report["next_scheduled_run"]
    if upcoming:
        print(f"  next run   : {upcoming['deployment']} at {upcoming['expected_start_time']}")
    else:
        print("  next run   : none scheduled yet (Prefect's scheduler adds runs each minute)")
    for warning in report["warnings"]:
        print(f"  warning    : {warning}")


# --- down -------------------------------------------------------------------------------


def down(args: argparse.Namespace) -> int:
    state = _state(args)
    pid = state.supervisor_pid() if state.root.is_dir() else None
    if pid is None:
        print(f"dagvault is not running (state directory {state.root})")
        return 0
    info = state.read_info()
    _signal(pid, signal.SIGTERM)
    if args.now:  # a second signal: the supervisor stops without waiting for runs in flight
        _signal(pid, signal.SIGINT)
    elif info is not None:
        _say_what_is_waited_for(state, info)
    _wait_until_gone(state, DOWN_TIMEOUT_SECONDS)
    if state.supervisor_alive():  # it did not stop in time: its children die with it
        _signal(pid, signal.SIGKILL)
        _wait_until_gone(state, 5.0)
    if state.supervisor_alive():
        raise ConfigError(
            f"dagvault's supervisor (pid {pid}) does not stop",
            f"Look at {state.log_file('supervisor')}; `kill -9 {pid}` ends it.",
        )
    state.forget()
    print("dagvault is down")
    return 0


def _say_what_is_waited_for(state: StateDir, info: ServiceInfo) -> None:
    auth = state.prefect_auth() if info.prefect_ui_url else None  # ours: basic auth
    since = datetime.fromisoformat(info.started_at)
    running = probe.operations_in_flight(info.prefect_api_url, auth, since)
    if running:
        print(
            f"waiting up to {DRAIN_SECONDS:.0f} s for operations in flight to finish: "
            f"{', '.join(running)} (`dagvault down --now` stops at once)",
            file=sys.stderr,
        )


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_until_gone(state: StateDir, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while state.supervisor_alive() and time.monotonic() < deadline:
        time.sleep(0.2)


# --- the parser -------------------------------------------------------------------------

Command = Callable[[str, Callable[[argparse.Namespace], int], str, str], argparse.ArgumentParser]
STATE_HELP = "the service's state directory (DAGVAULT_STATE_DIR, default ~/.local/state/dagvault)"


def add_commands(command: Command, *, port: Callable[[str], int]) -> None:
    p = command(
        "up",
        up,
        "Start the node service in the background: a Prefect server (unless PREFECT_API_URL "
        "names one), the HTTP API and the served deployments, under one supervisor that "
        "restarts a part that dies. Idempotent.",
        "dagvault up --config /etc/dagvault/config.json",
    )
    p.add_argument("--state-dir", help=STATE_HELP)
    p.add_argument("--api-host", default="127.0.0.1", help="the HTTP API's address (127.0.0.1)")
    p.add_argument("--api-port", type=port, default=8080, help="the HTTP API's port (8080)")
    p.add_argument(
        "--prefect-port", type=port, default=4200, help="the Prefect server's port (4200)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for each part to answer (180)",
    )
    p.add_argument(
        "--foreground",
        action="store_true",
        help="run in this process until SIGTERM (systemd, containers)",
    )
    p = command(
        "status",
        status,
        "Show whether the node service runs: PIDs, URLs, newest backup, RPO, next scheduled "
        "run. Exit 0 up, 8 degraded, 3 not running.",
        "dagvault status --json",
    )
    p.add_argument("--state-dir", help=STATE_HELP)
    p = command(
        "down",
        down,
        "Stop the node service cleanly: operations in flight finish first (at most "
        f"{DRAIN_SECONDS:.0f} s), then every part stops.",
        "dagvault down",
    )
    p.add_argument("--state-dir", help=STATE_HELP)
    p.add_argument(
        "--now",
        action="store_true",
        help="stop at once: operations in flight are stopped (their runs end Crashed; "
        "nothing half-written is left)",
    )
