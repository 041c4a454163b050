"""A real `dagvault api` server process on a loopback port, for the HTTP API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "description"
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    workdir: Path
    audit_log: Path
    log: Path
    pid: int  # the server process (its memory is measured from /proc)

    def client(self, token: str | None = None, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@contextmanager
def api_server(
    workdir: Path,
    prefect_api_url: str,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `dagvault api` in ``workdir`` (BACKUP_DIR=./backups, EXPORT_DIR=./exports,
    DATABASE_PATH=./blockchain.db) and wait until /health answers."""
    port = free_port()
    log = workdir / "server.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api_url,
        "DATABASE_PATH": "./blockchain.db",
        "BACKUP_DIR": "./backups",
        "EXPORT_DIR": "./exports",
        "DAGVAULT_AUDIT_LOG": str(workdir / "audit.jsonl"),
        **(extra_env or {}),
    }
    env.pop("DAGVAULT_API_TOKEN", None)
    if token is not None:
        env["DAGVAULT_API_TOKEN"] = token
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagvault_cli", "api", "--host", host, "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        f"http://127.0.0.1:{port}", port, workdir, workdir / "audit.jsonl", log, process.pid
    )
    try:
        _wait_until_healthy(server, process)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the API server exited:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API server did not start:\n{server.log.read_text()}")
