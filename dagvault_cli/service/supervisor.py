"""The node service's supervisor: starts the Prefect server, the HTTP API, the served
deployments and the ledger watcher, restarts a part that dies, and stops them all on SIGTERM.

It runs as ``python -m dagvault_cli.service.supervisor`` (``dagvault up`` starts it in the
background) or inside ``dagvault up --foreground`` (systemd, containers). Every part is a child
process. ``dagvault down`` (SIGTERM) stops them gracefully in order: the served deployments and
the API first, while the Prefect server they report to still answers. When the supervisor dies
abruptly (SIGKILL, OOM killer), its parts are killed with it (Linux PR_SET_PDEATHSIG): a graceful
stop would wait minutes for a Prefect server that is gone, and hold the ports the next
``dagvault up`` needs. A part killed mid-operation leaves what a killed CLI run leaves: nothing
torn, nothing that looks valid and is not. The state directory's lock is released by the kernel
at the same moment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dagvault import permissions
from dagvault.errors import ConfigError
from dagvault.procs import die_with_parent
from dagvault_cli.service import probe
from dagvault_cli.service.state import ServiceInfo, StateDir

LOG = logging.getLogger("dagvault.service")
# A part that keeps dying is restarted after 1, 2, 4 … at most this many seconds.
MAX_RESTART_DELAY = 60.0
STOP_GRACE_SECONDS = 15.0
# `dagvault down` lets operations in flight finish for at most this long (docs/service.md).
DRAIN_SECONDS = 120.0


@dataclass
class Options:
    state: StateDir
    api_host: str
    api_port: int
    prefect_port: int
    prefect_api_url: str | None  # an external Prefect server; None: start one
    config_file: str | None
    ready_timeout: float


@dataclass
class Part:
    name: str
    command: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log: Path = field(default=Path())


class Supervisor:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.state = options.state
        self.stopping = threading.Event()
        self.stop_now = threading.Event()  # a second SIGTERM/SIGINT: no more draining
        self.started_at = datetime.now(UTC)
        auth = self.state.prefect_auth()
        self.prefect_auth = None if options.prefect_api_url else auth
        self.prefect_api_url = options.prefect_api_url or (
            f"http://127.0.0.1:{options.prefect_port}/api"
        )
        self.api_url = f"http://{_url_host(options.api_host)}:{options.api_port}"
        client_env = {
            "PREFECT_API_URL": self.prefect_api_url,
            "DAGVAULT_API_TOKEN_FILE": str(self.state.api_token_file),
            "PREFECT_SERVER_ANALYTICS_ENABLED": os.environ.get(
                "PREFECT_SERVER_ANALYTICS_ENABLED", "false"
            ),
        }
        if options.prefect_api_url is None:  # ours: basic auth with the state dir's secret
            client_env["PREFECT_API_AUTH_STRING"] = auth
        config = ["--config", options.config_file] if options.config_file else []
        self.parts: list[Part] = []
        if options.prefect_api_url is None:
            self.parts.append(
                Part(
                    "prefect",
                    [
                        sys.executable,
                        "-P",  # not the working directory's modules (a project's flows/)
                        "-m",
                        "dagvault_cli.service.prefect_server",  # `prefect server start`
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(options.prefect_port),
                        "--no-background",
                    ],
                    {
                        "PREFECT_HOME": str(self.state.prefect_home),
                        "PREFECT_SERVER_API_AUTH_STRING": auth,
                        "PREFECT_SERVER_ANALYTICS_ENABLED": client_env[
                            "PREFECT_SERVER_ANALYTICS_ENABLED"
                        ],
                        "PREFECT_UI_API_URL": self.prefect_api_url,
                    },
                    lambda: probe.prefect_healthy(self.prefect_api_url, auth),
                )
            )
        cli = [sys.executable, "-m", "dagvault_cli"]
        self.parts.append(
            Part(
                "api",
                [
                    *cli,
                    "api",
                    "--host",
                    options.api_host,
                    "--port",
                    str(options.api_port),
                    "--warm-up",
                    *config,
                ],
                client_env,
                lambda: probe.api_healthy(self.api_url, self.state.api_token()),
            )
        )
        self.parts.append(
            Part(
                "deployments",
                [*cli, "serve-deployments", *config],
                client_env,
                lambda: probe.deployments_served(
                    self.prefect_api_url, client_env.get("PREFECT_API_AUTH_STRING")
                ),
            )
        )
        # The ledger watcher (docs/continuous.md): its events start the deployments'
        # incremental backups. It answers no probe: started is ready. Without the ledger
        # yet, it exits and is restarted, with the growing delay, until there is one.
        self.parts.append(Part("watch", [*cli, "watch", *config], client_env, lambda: True))
        for part in self.parts:
            part.log = self.state.log_file(part.name)

    # --- starting and stopping ------------------------------------------------------------

    def _spawn(self, part: Part) -> None:
        env = {**os.environ, **part.env}
        env.pop("DAGVAULT_API_TOKEN", None)  # the token file is the only source
        with open(part.log, "ab") as log:
            part.process = subprocess.Popen(
                part.command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        LOG.info("started %s (pid %d), log %s", part.name, part.process.pid, part.log)

    def _wait_ready(self, part: Part) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        while not part.ready():
            assert part.process is not None
            if part.process.poll() is not None:
                raise ConfigError(
                    f"dagvault's {part.name} exited with status {part.process.returncode} "
                    "while starting",
                    f"Its log says why: {part.log}",
                )
            if self.stopping.is_set():
                raise ConfigError("Stopped while starting", "Run `dagvault up` again.")
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"dagvault's {part.name} did not answer within "
                    f"{self.options.ready_timeout:.0f} s",
                    f"Its log says why: {part.log}; a first start of the Prefect server "
                    "(database migrations) can take longer: `dagvault up --timeout 600`.",
                )
            time.sleep(0.25)

    def start(self) -> None:
        for part in self.parts:
            self._spawn(part)
            self._wait_ready(part)
        self._publish()

    def _publish(self) -> None:
        self.state.write_info(
            ServiceInfo(
                supervisor_pid=os.getpid(),
                started_at=self.started_at.isoformat(timespec="seconds"),
                api_url=self.api_url,
                prefect_api_url=self.prefect_api_url,
                prefect_ui_url=None
                if self.options.prefect_api_url
                else self.prefect_api_url.removesuffix("/api"),
                config_file=self.options.config_file,
                children={p.name: p.process.pid for p in self.parts if p.process},
            )
        )

    def stop(self) -> None:
        """Stop every part; the operations in flight finish first (at most DRAIN_SECONDS),
        so that a clean stop leaves no run "Crashed" in the history. ``service.json`` goes
        first: CLI commands meanwhile run in their own process instead of being handed over."""
        self.stopping.set()
        self.state.forget()
        for part in self.parts:
            if part.name == "watch":  # no new triggered runs while draining
                _terminate(part)
        self._drain()
        for part in reversed(self.parts):  # clients first, the Prefect server last
            _terminate(part)

    def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        announced: list[str] = []
        while not self.stop_now.is_set():
            running = probe.operations_in_flight(
                self.prefect_api_url, self.prefect_auth, self.started_at
            )
            if not running:
                return
            if time.monotonic() >= deadline:
                LOG.warning(
                    "stopping with operations still running after %.0f s (their runs end "
                    "Crashed; nothing half-written is left): %s",
                    DRAIN_SECONDS,
                    ", ".join(running),
                )
                return
            if running != announced:
                LOG.info(
                    "waiting up to %.0f s for operations in flight to finish: %s "
                    "(`dagvault down --now` stops at once)",
                    deadline - time.monotonic(),
                    ", ".join(running),
                )
                announced = running
            self.stop_now.wait(1.0)

    # --- watching -------------------------------------------------------------------------

    def watch(self) -> None:
        """Until SIGTERM: restart a part that died, with a growing delay."""
        while not self.stopping.wait(1.0):
            for part in self.parts:
                if part.process is None or part.process.poll() is None:
                    continue
                now = time.monotonic()
                if part.next_start == 0.0:
                    delay = min(MAX_RESTART_DELAY, 2.0**part.restarts)
                    part.next_start = now + delay
                    LOG.warning(
                        "%s exited with status %s; restarting in %.0f s (log %s)",
                        part.name,
                        part.process.returncode,
                        delay,
                        part.log,
                    )
                elif now >= part.next_start:
                    part.restarts += 1
                    part.next_start = 0.0
                    self._spawn(part)
                    self._publish()


def _terminate(part: Part) -> None:
    process = part.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        LOG.warning("%s did not stop within %.0f s: killed", part.name, STOP_GRACE_SECONDS)
        process.kill()
        process.wait()
    LOG.info("stopped %s", part.name)


def _url_host(host: str) -> str:
    # A wildcard address is not one a client can call; IPv6 literals need brackets.
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def run(options: Options) -> int:
    """Run the service until SIGTERM/SIGINT; 0 when stopped, 1 when it could not start."""
    permissions.restrict_process_umask()
    lock = options.state.claim()
    if lock is None:
        LOG.error("dagvault is already running (state directory %s)", options.state.root)
        return 1
    supervisor = Supervisor(options)

    def on_signal(*_: object) -> None:
        # The first signal stops gracefully (operations in flight finish); a second one
        # (`dagvault down --now`, a second Ctrl-C) stops at once.
        if supervisor.stopping.is_set():
            supervisor.stop_now.set()
        supervisor.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    try:
        supervisor.start()
        LOG.info(
            "dagvault is up: API %s, Prefect %s", supervisor.api_url, supervisor.prefect_api_url
        )
        supervisor.watch()
        return 0
    except ConfigError as exc:
        LOG.error("%s (%s)", exc.message, exc.hint)
        return 1
    finally:
        supervisor.stop()
        os.close(lock)


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="dagvault-supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--api-host", required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--prefect-port", type=int, required=True)
    parser.add_argument("--prefect-api-url")
    parser.add_argument("--config")
    parser.add_argument("--ready-timeout", type=float, required=True)
    args = parser.parse_args(argv)
    return Options(
        state=StateDir(Path(args.state_dir)),
        api_host=args.api_host,
        api_port=args.api_port,
        prefect_port=args.prefect_port,
        prefect_api_url=args.prefect_api_url,
        config_file=args.config,
        ready_timeout=args.ready_timeout,
    )


def to_argv(options: Options) -> list[str]:
    argv = [
        "--state-dir",
        str(options.state.root),
        "--api-host",
        options.api_host,
        "--api-port",
        str(options.api_port),
        "--prefect-port",
        str(options.prefect_port),
        "--ready-timeout",
        str(options.ready_timeout),
    ]
    if options.prefect_api_url:
        argv += ["--prefect-api-url", options.prefect_api_url]
    if options.config_file:
        argv += ["--config", options.config_file]
    return argv


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s dagvault.service: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    configure_logging()
    sys.exit(run(parse(sys.argv[1:])))
