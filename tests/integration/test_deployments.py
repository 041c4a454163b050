"""The deployments for real: `prefect server start` (its own PREFECT_HOME, a free loopback
port; SQLite, then PostgreSQL), `prefect deploy` from deployments/prefect.yaml, a process
worker, runs triggered like an operator would; and `deployments/serve.py`.

The worker (or serve process) gets only the node's configuration (DATABASE_PATH,
BACKUP_DIR, …): the deployments pass no paths, so this also proves that one deployment
serves any node.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from _helpers import free_port
from conftest import PROJECT
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from dagvault.catalog import list_backups
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_backup

BIN = Path(sys.executable).parent
# The quality gate (GX: 10-20 s of start-up per run on this machine) runs in a worker like
# any task; tests/test_quality.py covers it. Here it would only multiply the time.
NO_GATE = {"quality": False}
DEPLOYMENTS = {
    "full-backup",
    "incremental-backup",
    "nightly-verify",
    "nightly-parquet-export",
    "retention-prune",
    "replicate-off-site",
    "restore-drill",
    "weekly-health-report",
    "fleet-backup",
}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Server:
    """A `prefect server start` process on a free loopback port, with its own PREFECT_HOME."""

    home: Path
    url: str
    process: subprocess.Popen[bytes]

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 120
        while not _healthy(self.url):
            assert self.process.poll() is None, (self.home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not start in 120 s"
            time.sleep(0.5)


def launch_server(stack: ExitStack, home: Path, **env: str) -> Server:
    """Start a server (stopped when ``stack`` closes) without waiting for it."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = stack.enter_context((home / "server.log").open("wb"))
    process = subprocess.Popen(
        [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(process.wait, timeout=60)
    stack.callback(process.terminate)
    return Server(home, f"http://127.0.0.1:{port}/api", process)


class Node:
    """One node's configuration: a ledger and where its backups, exports, reports go."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ledger = root / "blockchain.db"
        self.backups = root / "backups"
        create_sample_ledger(self.ledger, 200, seed=3, nodes=8)
        self.env = {
            "DATABASE_PATH": str(self.ledger),
            "BACKUP_DIR": str(self.backups),
            "EXPORT_DIR": str(root / "exports"),
            "DAGVAULT_REPORTS_DIR": str(root / "reports"),
        }


def prefect_cli(api_url: str, home: Path, *args: str, **env: str) -> str:
    done = subprocess.run(
        [BIN / "prefect", *args],
        cwd=PROJECT,
        env={**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=log.parent, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def deploy(api_url: str, home: Path, *which: str, **env: str) -> None:
    """`prefect deploy` the named deployments (default: all) once the work pool exists
    (the worker creates it as `prefect work-pool create dagvault --type process` would)."""
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        deadline = time.monotonic() + 120
        while not any(pool.name == "dagvault" for pool in client.read_work_pools()):
            assert time.monotonic() < deadline, "the worker never created its work pool"
            time.sleep(0.5)
    names = [arg for name in which for arg in ("--name", name)] or ["--all"]
    prefect_cli(
        api_url, home, "deploy", *names, "--prefect-file", "deployments/prefect.yaml", **env
    )


@contextmanager
def worker(api_url: str, node: Node) -> Iterator[None]:
    env = {
        **node.env,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(node.root / "worker-home"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    args = [str(BIN / "prefect"), "worker", "start", "--pool", "dagvault", "--type", "process"]
    with background(args, env, node.root / "worker.log"):
        yield


def trigger(api_url: str, *runs_of: tuple[str, dict[str, Any]]) -> list[FlowRun]:
    """Start runs of the deployments together (each with its parameter overrides), wait
    until every one is final."""
    timeout = 240
    with temporary_settings({PREFECT_API_URL: api_url}):
        runs = [run_deployment(name, parameters=params, timeout=0) for name, params in runs_of]
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while True:
                runs = [client.read_flow_run(run.id) for run in runs]
                if all(run.state and run.state.is_final() for run in runs):
                    return runs
                assert time.monotonic() < deadline, [str(r.state) for r in runs]
                time.sleep(1)


def server_view(api_url: str, run_ids: list[UUID]) -> dict[str, Any]:
    """What an operator sees: deployments and their schedules, artifacts, task runs."""
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        ids = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        return {
            "deployments": {d.name: d for d in client.read_deployments()},
            "artifacts": client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
            ),
            "task_runs": client.read_task_runs(flow_run_filter=ids),
            "limits": {limit.name: limit for limit in client.read_global_concurrency_limits()},
        }


def schedule_of(deployment: Any, slug: str) -> tuple[str, str | None, bool]:
    """The schedule's cron expression, its timezone and whether it is active."""
    schedule = next(s for s in deployment.schedules if s.slug == slug)
    return schedule.schedule.cron, schedule.schedule.timezone, schedule.active


def assert_backup_run(run: FlowRun, view: dict[str, Any], node: Node) -> None:
    """Completed, its backup artifact on the server, a valid backup on disk."""
    assert run.state is not None and run.state.is_completed(), run.state
    assert "backup-blockchain" in {a.key for a in view["artifacts"] if a.flow_run_id == run.id}
    backups = [e for e in list_backups(node.backups) if e.info]
    assert backups, "the run completed but left no backup"
    assert verify_backup(backups[0].path).ok


@contextmanager
def postgres() -> Iterator[str]:
    """DAGVAULT_TEST_POSTGRES_URL (.ci/run starts one), else a cluster of our own from the
    installed PostgreSQL binaries; skipped only where PostgreSQL is not installed."""
    if url := os.environ.get("DAGVAULT_TEST_POSTGRES_URL"):
        yield url
        return
    data = Path(tempfile.mkdtemp(prefix="dagvault-pg-"))
    script = str(PROJECT / ".ci" / "postgres")
    started = subprocess.run(
        [script, "start", str(data), str(free_port())], capture_output=True, text=True
    )
    if started.returncode == 3:
        raise PostgresUnavailable(started.stderr.strip())
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([script, "stop", str(data)], check=True)


class PostgresUnavailable(Exception):
    pass


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    """The module's servers, started together so that their start-ups overlap: one on
    SQLite, and one on PostgreSQL (or the reason there is none)."""
    with ExitStack() as stack:
        home = Path(tempfile.mkdtemp(prefix="dagvault-server-"))
        started: dict[str, Any] = {"sqlite": launch_server(stack, home / "sqlite")}
        try:
            url = stack.enter_context(postgres())
        except PostgresUnavailable as exc:
            started["postgres unavailable"] = str(exc)
        else:
            started["postgres url"] = url
            started["postgres"] = launch_server(
                stack, home / "postgres", PREFECT_SERVER_DATABASE_CONNECTION_URL=url
            )
        for server in started.values():
            if isinstance(server, Server):
                server.wait_until_healthy()
        yield started


def test_prefect_deploy_then_a_worker_runs_the_backup_deployment(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    sqlite_server = servers["sqlite"].url
    node = Node(tmp_path)
    with worker(sqlite_server, node):
        deploy(sqlite_server, tmp_path / "client-home", BACKUP_PRESET="critical")
        # Two deployments firing at the same moment on one database.
        full, incremental = trigger(
            sqlite_server,
            ("dagvault-backup/full-backup", NO_GATE),
            ("dagvault-backup/incremental-backup", NO_GATE),
        )
    view = server_view(sqlite_server, [full.id, incremental.id])
    assert set(view["deployments"]) == DEPLOYMENTS
    deployments = view["deployments"]
    assert schedule_of(deployments["full-backup"], "full-backup") == ("0 * * * *", "UTC", True)
    assert schedule_of(deployments["incremental-backup"], "hourly-incremental")[2] is False
    assert "SCHEDULE INACTIVE" in (deployments["incremental-backup"].description or "")
    # No backup.replicas on this node: nothing to copy to, so the schedule is off.
    assert schedule_of(deployments["replicate-off-site"], "hourly-replicate")[2] is False
    assert deployments["full-backup"].work_pool_name == "dagvault"
    assert_backup_run(full, view, node)
    assert incremental.state is not None and incremental.state.is_completed()
    # The global concurrency limit queued one behind the other: neither backup met the
    # other's flock (no retry), and their backup tasks never overlapped.
    backups = sorted(
        (t for t in view["task_runs"] if t.name.startswith("take-backup ")),
        key=lambda t: t.start_time,
    )
    assert [t.run_count for t in backups] == [1, 1]
    assert backups[0].end_time <= backups[1].start_time
    assert any(name.startswith("dagvault-db-blockchain-") for name in view["limits"])


def test_served_deployments_run_without_a_work_pool(prefect_api_url: str, tmp_path: Path) -> None:
    node = Node(tmp_path)
    env = {**node.env, "PREFECT_API_URL": prefect_api_url, "BACKUP_PRESET": "development"}
    args = [sys.executable, str(PROJECT / "deployments" / "serve.py")]
    with background(args, env, tmp_path / "serve.log"):
        with temporary_settings({PREFECT_API_URL: prefect_api_url}):
            deadline = time.monotonic() + 120
            while True:
                with get_client(sync_client=True) as client:
                    served = {d.name for d in client.read_deployments()}
                if served >= DEPLOYMENTS:
                    break
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(1)
        # The quality gate's GX start-up (seconds) is covered by the two other runs.
        (run,) = trigger(prefect_api_url, ("dagvault-backup/full-backup", NO_GATE))
    view = server_view(prefect_api_url, [run.id])
    deployments = view["deployments"]
    assert schedule_of(deployments["full-backup"], "full-backup") == ("0 0 * * 0", "UTC", True)
    assert schedule_of(deployments["incremental-backup"], "hourly-incremental")[2] is True
    assert deployments["full-backup"].work_pool_name is None
    assert_backup_run(run, view, node)
    # Named and tagged like a command's run, with the deployment's origin (docs/prefect-ui.md).
    assert run.name == "backup-blockchain-full"
    tags = {"dagvault", "backup", "db:blockchain", "schedule"}
    assert tags <= set(run.tags)
    assert view["task_runs"] and all(tags <= set(t.tags) for t in view["task_runs"])


def test_the_same_deployment_on_a_postgresql_backed_server(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    if "postgres" not in servers:
        pytest.skip(f"PostgreSQL unavailable: {servers['postgres unavailable']}")
    server: Server = servers["postgres"]
    node = Node(tmp_path)
    with worker(server.url, node):
        deploy(server.url, tmp_path / "client-home", "full-backup")
        (run,) = trigger(server.url, ("dagvault-backup/full-backup", NO_GATE))
    view = server_view(server.url, [run.id])
    deployments = view["deployments"]
    assert schedule_of(deployments["full-backup"], "full-backup") == ("0 0 * * *", "UTC", True)
    assert_backup_run(run, view, node)
    # The run history lives in PostgreSQL, not in a SQLite file under PREFECT_HOME.
    assert not list(server.home.rglob("*.db"))
    assert asyncio.run(_count_flow_runs(servers["postgres url"], run.id)) == 1


async def _count_flow_runs(url: str, run_id: UUID) -> int:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM flow_run WHERE id = $1", run_id))
    finally:
        await connection.close()
