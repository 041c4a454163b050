"""The operations journal: every run counts in /metrics, whoever ran it (the CLI, a flow
called directly, the API), and the counts are read incrementally from the journal.

Integration half; the tests that need no server or child process are in
tests/unit/test_journal.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _helpers import make_odd_ledger, write_odd_ledger_config
from conftest import PROJECT, CliRunner
from prometheus_client.parser import text_string_to_metric_families

from dagvault import journal
from tests._api import Server, api_server


def _counts(text: str) -> dict[tuple[str, str], float]:
    """(sample name, operation label) -> value, through Prometheus' own parser."""
    return {
        (sample.name, sample.labels.get("operation", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom dagvault import journal\n"
        "for _ in range(300):\n"
        "    journal.record(Path(sys.argv[1]), 'verify', journal.SUCCESS)\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(4)]
    assert all(w.wait(timeout=120) == 0 for w in writers)
    assert journal.Tally(tmp_path).counts() == {("verify", "success"): 1200}


@pytest.fixture
def server(prefect_api_url: str, tmp_path: Path) -> Iterator[Server]:
    make_odd_ledger(tmp_path / "blockchain.db", 60)
    config = write_odd_ledger_config(tmp_path)
    with api_server(
        tmp_path, prefect_api_url, extra_env={"DAGVAULT_CONFIG": str(config)}
    ) as running:
        yield running


def test_cli_and_flow_runs_show_in_the_api_metrics(
    server: Server, cli: CliRunner, tmp_path: Path, prefect_api_url: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        before = _counts(http.get("/metrics").text)
    assert before[("dag_storage_operations_total", "backup")] == 0
    env = {"DATABASE_PATH": "./blockchain.db", "BACKUP_DIR": "./backups"}
    taken = cli("backup", "--no-quality", cwd=tmp_path, env=env)
    assert taken.returncode == 0, taken.stderr
    # A flow called directly (as a deployment's worker does), in another process.
    flow = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom flows.backup import backup_flow\n"
            "backup_flow(database_path=sys.argv[1], backup_dir=sys.argv[2], quality=False)\n",
            str(tmp_path / "blockchain.db"),
            str(tmp_path / "backups"),
        ],
        cwd=PROJECT,
        env={**os.environ, "PREFECT_API_URL": prefect_api_url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert flow.returncode == 0, flow.stderr
    newest = max((tmp_path / "backups").glob("*.db"))
    with open(newest, "r+b") as fh:  # a damaged backup: its verification fails
        fh.seek(9000)
        fh.write(b"\xff" * 64)
    failed = cli("verify", str(newest), cwd=tmp_path, env=env)
    assert failed.returncode == 4, failed.stderr
    cleaned = cli("cleanup", "--keep", "1", cwd=tmp_path, env=env)
    assert cleaned.returncode == 0, cleaned.stderr

    with httpx.Client(base_url=server.url, timeout=60) as http:
        text = http.get("/metrics").text
    after = _counts(text)
    assert after[("dag_storage_operations_total", "backup")] == 2
    assert after[("dag_storage_errors_total", "backup")] == 0
    # The verifications after the two backups, then the failed one.
    assert after[("dag_storage_operations_total", "verify")] == 3
    assert after[("dag_storage_errors_total", "verify")] == 1
    assert after[("dag_storage_operations_total", "cleanup")] == 1
    assert after[("dag_storage_operations_total", "prune")] == 0
    assert after[("dag_quality_gate_failures_total", "backup")] == 0
    # The description's names and labels, unchanged.
    assert ("dag_storage_size_bytes", "") in after
    assert {op for name, op in after if name == "dag_storage_operations_total"} >= {
        "backup",
        "restore",
        "export",
        "import",
        "verify",
        "cleanup",
    }
