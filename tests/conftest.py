"""Shared fixtures: real SQLite files in tmp_path, one real Prefect server per session.

Prefect and GX must never touch the developer's own home, server or analytics, so
the environment is fixed here, before anything imports Prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

_PREFECT_HOME = tempfile.mkdtemp(prefix="dagvault-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
# No command of a test hands its operation to a node service the developer runs
# (`dagvault up` with the default state directory): the tests that want one start their own.
os.environ["DAGVAULT_STATE_DIR"] = tempfile.mkdtemp(prefix="dagvault-test-state-")
# Quality gates write GX Data Docs; never into the checkout's ./reports.
os.environ["DAGVAULT_REPORTS_DIR"] = tempfile.mkdtemp(prefix="dagvault-test-reports-")
for _name in (
    "PREFECT_API_URL",
    "DAGVAULT_CONFIG",
    "DATABASE_PATH",
    "BACKUP_DIR",
    "BACKUP_INTERVAL_HOURS",
    "BACKUP_RETENTION_COUNT",
    "BACKUP_COMPRESSION_ENABLED",
    "BACKUP_AUTO_CLEANUP",
    "EXPORT_DIR",
    "DEFAULT_EXPORT_FORMAT",
    "CREATE_PRE_RESTORE_BACKUP",
    "PRE_RESTORE_BACKUP_COUNT",
    "RESTORE_VERIFY_CHECKSUM",
    "DAGVAULT_BUSY_TIMEOUT",
    "BACKUP_REPLICAS",
    "BACKUP_ENCRYPTION_ENABLED",
    "DAGVAULT_ENCRYPTION_KEY_FILE",
    "DAGVAULT_ENCRYPTION_KEY",
    "DAGVAULT_STAGING_DIR",
    "DAGVAULT_ALLOW_DECREASE",
):
    os.environ.pop(_name, None)

# A test module split into tests/unit and tests/integration keeps what both halves use in
# tests/_shared (asserts rewritten as in a test module); its fixtures are plugins here, as
# is the longest-first order of the test files (tests/_order.py).
pytest.register_assert_rewrite("_shared")
pytest_plugins = ["_order", "_shared.forgery", "_shared.messages", "_shared.remote"]


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A real Prefect server (prefect_test_harness) shared by flow and CLI tests."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        assert url
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server on loopback (moto's server mode, a subprocess), with
    credentials in the standard AWS environment variables (subprocesses inherit them)."""
    from _s3 import moto_server

    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "dagvault-test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "dagvault-test-secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint


@pytest.fixture
def s3_target(s3_endpoint: str) -> str:
    """A new bucket per test; the target is a prefix inside it."""
    import fsspec

    bucket = f"dagvault-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
    return f"s3://{bucket}/node-1/backups"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A small WAL-mode sample ledger (300 transactions, 16 nodes)."""
    from dagvault.sample import create_sample_ledger

    path = tmp_path / "blockchain.db"
    create_sample_ledger(path, 300, seed=7, nodes=16)
    return path


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(prefect_api_url: str, tmp_path: Path) -> CliRunner:
    """Run the real `dagvault` command in a subprocess against the test Prefect server."""

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PREFECT_API_URL": prefect_api_url, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "dagvault_cli", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def odd_ledger(tmp_path: Path) -> Path:
    """A ledger unlike the sample (8 KiB pages, 20 KB blobs, WITHOUT ROWID, other names);
    pass ``--config`` from ``write_odd_ledger_config`` so the gates find its tables."""
    from _helpers import make_odd_ledger

    return make_odd_ledger(tmp_path / "node-ledger.db")
