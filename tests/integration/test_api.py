"""The HTTP API through a real `dagvault api` process (loopback, no token, as the
description's scripts expect): its request bodies, real results, Prefect runs, the
description's curl examples and integration scripts, health and metrics during a backup,
and the audit log."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._api import FIXTURES, Server, api_server
from tests._helpers import content_digest, sha3_file

ENVELOPE_KEYS = {"success", "data", "error", "timestamp"}


@pytest.fixture(scope="module")
def server(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from dagvault.sample import create_sample_ledger

    workdir = tmp_path_factory.mktemp("api")
    create_sample_ledger(workdir / "blockchain.db", 2000, seed=11, nodes=16)
    with api_server(workdir, prefect_api_url) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == ENVELOPE_KEYS and body["success"] is True and body["error"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    return body["data"]


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{selector}}}" if labels else "")) + r" (\S+)"
    match = re.search(rf"^{pattern}$", text, re.M)
    assert match, f"{name} {labels} not in metrics:\n{text}"
    return float(match[1])


def test_health_and_metrics_answer_while_a_backup_runs(server: Server) -> None:
    outcome: dict[str, httpx.Response] = {}

    def backup() -> None:
        with server.client() as http:
            outcome["backup"] = http.post("/backup", json={"description": "long one"})

    worker = threading.Thread(target=backup)
    worker.start()
    seen_running = False
    with server.client(timeout=5) as http:
        while worker.is_alive() and not seen_running:
            text = http.get("/metrics").text
            seen_running = metric(text, "dag_operations_in_progress", operation="backup") == 1
            if seen_running:
                health = ok(http.get("/health"))
                assert health["operations_in_progress"] == 1
                assert "backup" not in outcome  # answered while the backup still ran
            time.sleep(0.02)
    worker.join()
    assert seen_running
    ok(outcome["backup"])


def test_backup_with_the_description_body_is_a_real_verified_backup(
    server: Server, client: httpx.Client, prefect_api_url: str
) -> None:
    data = ok(
        client.post(
            "/backup", json={"backup_path": "./backups/blockchain", "description": "Weekly backup"}
        )
    )
    assert "note" not in data
    assert data["success"] is True
    path = server.workdir / data["backup_path"]
    assert re.fullmatch(r"backups/blockchain_\d{10}\.db", data["backup_path"])
    assert sha3_file(path) == data["result"]["checksum"]
    meta = json.loads(Path(f"{path}.meta").read_text())
    assert meta["metadata"]["description"] == "Weekly backup"
    assert meta["verification"]["status"] == "verified" and meta["quality"]["passed"]
    assert content_digest(path) == content_digest(server.workdir / "blockchain.db")

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(data["flow_run_id"])
    assert run.state is not None and run.state.is_completed()
    assert {"dagvault", "api", "backup", "db:blockchain"} <= set(run.tags)


def test_incremental_backup_and_list_newest_first(client: httpx.Client) -> None:
    first = ok(client.post("/backup", json={"backup_path": "./backups/chain", "quality": False}))
    delta = ok(
        client.post(
            "/backup",
            json={"backup_path": "./backups/chain", "backup_type": "incremental", "quality": False},
        )
    )
    assert delta["result"]["backup_type"] == "Incremental"
    assert delta["result"]["metadata"]["parent"] == Path(first["backup_path"]).name
    listed = ok(client.get("/backup/list", params={"backup_dir": "./backups", "limit": 2}))
    assert [e["backup_path"] for e in listed] == [delta["backup_path"], first["backup_path"]]
    assert listed[0]["total_transactions"] == 2000
    assert {"timestamp", "file_size", "backup_type"} <= set(listed[0])


def test_restore_brings_back_the_backup_with_a_pre_restore_backup(
    server: Server, client: httpx.Client
) -> None:
    live = server.workdir / "blockchain.db"
    backup = ok(client.post("/backup", json={"backup_path": "./backups/before", "quality": False}))
    with closing(sqlite3.connect(live)) as conn, conn:
        conn.execute("DELETE FROM transaction_parents")
    changed = content_digest(live)
    data = ok(
        client.post(
            "/backup/restore",
            json={"backup_path": f"./{backup['backup_path']}", "create_pre_restore_backup": True},
        )
    )
    assert content_digest(live) == content_digest(server.workdir / backup["backup_path"])
    pre = server.workdir / data["result"]["pre_restore_backup"]
    assert pre.is_file() and content_digest(pre) == changed
    assert data["create_pre_restore_backup"] is True


def test_export_sql_loads_into_the_same_database(server: Server, client: httpx.Client) -> None:
    data = ok(
        client.post("/backup/export", json={"export_path": "./exports/blockchain", "format": "sql"})
    )
    assert re.fullmatch(r"exports/blockchain_\d{10}\.sql", data["export_path"])
    assert data["format"] == "sql"
    rebuilt = server.workdir / "rebuilt.db"
    with closing(sqlite3.connect(rebuilt)) as conn:
        conn.executescript((server.workdir / data["export_path"]).read_text())
    assert content_digest(rebuilt) == content_digest(server.workdir / "blockchain.db")
    refused = client.post("/backup/export", json={"format": "sql", "tables": ["no_such_table"]})
    assert refused.status_code == 400 and "no_such_table" in refused.json()["error"]


def test_repeated_exports_to_one_path_are_new_siblings(
    server: Server, client: httpx.Client
) -> None:
    """Each request writes a new export beside the earlier ones: never a 400 "already
    exists", never a dataset inside an earlier dataset's directory."""
    sent = [("json", "./exports/ledger"), ("json", "./exports/ledger"), ("csv", "./exports/ledger")]
    sent += [("parquet", "./exports/ledger"), ("sql", "./exports/ledger.sql")]
    sent += [("sql", "./exports/ledger")]
    paths = []
    for fmt, export_path in sent:
        body = {"export_path": export_path, "format": fmt, "tables": ["nodes"], "quality": False}
        paths.append(ok(client.post("/backup/export", json=body))["export_path"])
    assert len(set(paths)) == len(paths)
    for (fmt, _), path in zip(sent, paths, strict=True):
        assert re.fullmatch(
            r"exports/ledger_\d{10}(_\d+)?" + (r"\.sql" if fmt == "sql" else ""), path
        )
        written = server.workdir / path
        manifest = Path(f"{written}.manifest.json") if fmt == "sql" else written / "manifest.json"
        assert json.loads(manifest.read_text())["format"] == fmt
        if fmt != "sql":  # the dataset holds its own files only, no earlier export
            file = json.loads(manifest.read_text())["tables"]["nodes"]["file"]
            assert {p.name for p in written.iterdir()} == {"manifest.json", file}
    # Naming an earlier dataset itself makes a sibling too; a plain folder gets one inside.
    dataset = paths[0]
    body = {"export_path": dataset, "format": "csv", "tables": ["nodes"], "quality": False}
    again = ok(client.post("/backup/export", json=body))
    assert Path(again["export_path"]).parent == Path("exports")
    assert again["export_path"].startswith(f"{dataset}_")
    (server.workdir / "exports" / "daily").mkdir()
    body = {"export_path": "./exports/daily/", "tables": ["nodes"], "quality": False}
    inside = ok(client.post("/backup/export", json=body))
    assert re.fullmatch(r"exports/daily/blockchain_\d{10}(_\d+)?\.sql", inside["export_path"])


def test_export_parquet_of_a_backup(server: Server, client: httpx.Client) -> None:
    backup = ok(client.post("/backup", json={"quality": False}))
    data = ok(
        client.post(
            "/backup/export",
            json={"format": "parquet", "backup_path": backup["backup_path"], "tables": ["nodes"]},
        )
    )
    manifest = json.loads((server.workdir / data["export_path"] / "manifest.json").read_text())
    assert manifest["tables"]["nodes"]["rows"] == 16 and data["result"]["quality"]["passed"]


def test_export_jsonl_is_a_format_of_the_api(server: Server, client: httpx.Client) -> None:
    data = ok(client.post("/backup/export", json={"format": "jsonl", "tables": ["nodes"]}))
    assert data["format"] == "jsonl" and data["result"]["quality"]["passed"]
    export = server.workdir / data["export_path"]
    assert json.loads((export / "manifest.json").read_text())["format"] == "jsonl"
    lines = (export / "nodes.jsonl").read_text(encoding="utf-8").splitlines()
    assert len([json.loads(line) for line in lines]) == 16


def test_verify_reports_a_damaged_backup(server: Server, client: httpx.Client) -> None:
    backup = ok(client.post("/backup", json={"backup_path": "damaged", "quality": False}))
    assert backup["backup_path"].startswith("backups/damaged_")
    verified = ok(client.post("/backup/verify", json={"backup_path": backup["backup_path"]}))
    assert verified["result"]["reports"][0]["valid"]
    path = server.workdir / backup["backup_path"]
    with open(path, "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\xff" * 64)
    response = client.post("/backup/verify", json={"backup_path": backup["backup_path"]})
    body = response.json()
    assert response.status_code == 422 and body["success"] is False
    assert "failed verification" in body["error"]
    assert body["data"]["reports"][0]["valid"] is False
    path.unlink()
    Path(f"{path}.meta").unlink()


def test_without_a_token_only_loopback_host_names_are_served(server: Server) -> None:
    rebound = httpx.get(f"{server.url}/backup/list", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400
    assert httpx.get(f"http://localhost:{server.port}/backup/list").status_code == 200


def test_schedule_reports_the_description_fields(client: httpx.Client) -> None:
    data = ok(client.get("/backup/schedule", params={"interval_hours": 6}))
    assert set(data) == {"last_backup", "next_backup", "interval_hours", "backup_dir", "is_due"}
    assert data["interval_hours"] == 6 and data["backup_dir"] == "backups"
    assert data["next_backup"] == data["last_backup"] + 6 * 3600 and data["is_due"] is False


def _curl_examples(port: int) -> list[str]:
    text = (
        (FIXTURES / "curl_examples.sh").read_text().replace("localhost:8080", f"localhost:{port}")
    )
    return [block for block in text.split("\n\n") if "curl" in block]


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_description_curl_examples(server: Server) -> None:
    create, listing, restore = _curl_examples(server.port)
    made = json.loads(_bash(create, server.workdir).stdout)
    assert made["success"] and made["data"]["backup_path"].startswith("backups/test_backup_")
    listed = json.loads(_bash(listing, server.workdir).stdout)
    assert made["data"]["backup_path"] in [e["backup_path"] for e in listed["data"]]
    # The example's file does not exist here: a clear 404, nothing restored.
    missing = json.loads(_bash(restore, server.workdir).stdout)
    assert missing["success"] is False
    assert missing["error"] == "Backup backups/blockchain_1704067200.db does not exist"
    real = restore.replace("./backups/blockchain_1704067200.db", made["data"]["backup_path"])
    assert json.loads(_bash(real, server.workdir).stdout)["success"] is True


def _script(name: str, port: int, directory: Path) -> Path:
    text = (FIXTURES / name).read_text().replace("localhost:8080", f"localhost:{port}")
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_automated_backup_script(server: Server, tmp_path: Path) -> None:
    script = _script("automated_backup.sh", server.port, tmp_path)
    done = _bash(str(script), server.workdir)
    assert done.returncode == 0, done.stderr
    assert "Backup completed and old files cleaned up" in done.stdout
    day = time.strftime("%Y%m%d")
    assert re.search(rf'"backup_path": "backups/daily_{day}_\d+\.db"', done.stdout)
    assert list((server.workdir / "backups").glob(f"daily_{day}_*.db.meta"))


def test_verify_backups_script_needs_its_missing_import(server: Server, tmp_path: Path) -> None:
    script = _script("verify_backups.py", server.port, tmp_path)
    as_written = subprocess.run(
        [sys.executable, str(script)], cwd=server.workdir, capture_output=True, text=True
    )
    assert as_written.returncode == 1 and "NameError: name 'os' is not defined" in as_written.stderr
    script.write_text("import os\n" + script.read_text())
    fixed = subprocess.run(
        [sys.executable, str(script)], cwd=server.workdir, capture_output=True, text=True
    )
    assert fixed.returncode == 0, fixed.stderr
    lines = fixed.stdout.splitlines()
    listed = ok(httpx.get(f"{server.url}/backup/list"))
    assert len(lines) == len(listed) > 0
    # The description's emoji arrived as mojibake ("‚úÖ" for ✅); the verdicts are what count.
    assert all(line.endswith(": Valid") for line in lines), lines


def test_disaster_recovery_script(server: Server, tmp_path: Path) -> None:
    script = _script("disaster_recovery.sh", server.port, tmp_path)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "systemctl.calls"
    systemctl = fake_bin / "systemctl"  # the node's service manager is not ours to drive
    systemctl.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    systemctl.chmod(systemctl.stat().st_mode | stat.S_IEXEC)
    path = f"{fake_bin}:{os.environ['PATH']}"

    usage = _bash(str(script), server.workdir, PATH=path)
    assert usage.returncode == 1 and "Usage:" in usage.stdout

    listed = ok(httpx.get(f"{server.url}/backup/list", params={"limit": 1}))
    name = Path(listed[0]["backup_path"]).name
    done = _bash(f"{script} {name}", server.workdir, PATH=path)
    assert done.returncode == 0, done.stderr
    response = json.loads(
        done.stdout.split("Restoring from backup: " + name + "\n", 1)[1].rsplit("Starting", 1)[0]
    )
    assert response["success"] is True
    assert response["data"]["result"]["pre_restore_backup"]
    assert calls.read_text().splitlines() == [
        "stop quantum-dag-blockchain",
        "start quantum-dag-blockchain",
    ]
    assert content_digest(server.workdir / "blockchain.db") == content_digest(
        server.workdir / listed[0]["backup_path"]
    )


def test_cleanup_keeps_the_newest(server: Server, client: httpx.Client) -> None:
    before = ok(client.get("/backup/list"))
    plan = ok(client.post("/backup/cleanup", json={"keep": 1, "dry_run": True}))["result"]
    assert plan["dry_run"] and plan["removed_backups"] > 0
    assert len(ok(client.get("/backup/list"))) == len(before)
    done = ok(client.post("/backup/cleanup", json={"keep": 1}))["result"]
    assert done["removed_backups"] == plan["removed_backups"]
    after = ok(client.get("/backup/list"))
    # The newest entry is kept as it was; the recovery window (every entry repeats the
    # directory's) now starts at it, since the older points are gone.
    unchanged = [
        {k: v for k, v in e.items() if k != "recovery_window"} for e in (after[0], before[0])
    ]
    assert unchanged[0] == unchanged[1] and len(after) == len(before) - done["removed_backups"]
    assert after[0]["recovery_window"]["recovery_points"] == 1


def test_metrics_count_operations_errors_and_backups(server: Server, client: httpx.Client) -> None:
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric(text, "dag_storage_operations_total", operation="backup") >= 8
    assert metric(text, "dag_storage_errors_total", operation="export") == 1
    assert metric(text, "dag_storage_errors_total", operation="verify") == 1
    # A request refused before its flow ran (the curl example's missing file) is no operation.
    assert metric(text, "dag_storage_errors_total", operation="restore") == 0
    assert metric(text, "dag_quality_gate_failures_total", operation="backup") == 0
    live = server.workdir / "blockchain.db"
    size = live.stat().st_size + (
        Path(f"{live}-wal").stat().st_size if Path(f"{live}-wal").exists() else 0
    )
    assert metric(text, "dag_storage_size_bytes") == size
    newest = ok(client.get("/backup/list"))
    full = next(e for e in newest if e["backup_type"] == "Full")
    assert (
        metric(text, "dag_backup_last_success_timestamp_seconds", type="full") == full["timestamp"]
    )
    assert metric(text, "dag_backup_last_size_bytes", type="full") == full["file_size"]
    assert metric(text, "dag_backup_last_duration_seconds", type="full") > 0


def test_audit_log_has_one_line_per_operation(server: Server) -> None:
    lines = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    assert {"backup", "restore", "export", "verify", "cleanup"} <= {e["action"] for e in lines}
    assert all(e["who"] == "client:127.0.0.1" for e in lines)
    assert all(
        {"time", "action", "request", "result", "status", "flow_run_id"} <= set(e) for e in lines
    )
    failed_export = [e for e in lines if e["action"] == "export" and e["result"] == "failure"]
    assert len(failed_export) == 1 and "no_such_table" in failed_export[0]["error"]
    restores = [e for e in lines if e["action"] == "restore" and e["result"] == "success"]
    assert restores and all(e["request"]["create_pre_restore_backup"] for e in restores)
    assert oct(server.audit_log.stat().st_mode & 0o777) == "0o600"


def test_metrics_show_the_replication_lag_of_each_target(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    from dagvault.storage import open_store
    from dagvault.storage.offsite.replicate import replicate, write_status

    backups = server.workdir / "backups"
    target = f"file://{tmp_path / 'second-disk'}"
    write_status(backups, replicate(backups, open_store(target), key=None))
    text = client.get("/metrics").text
    assert metric(text, "dag_replication_lag_seconds", target=target) == 0
    assert metric(text, "dag_replication_missing_backups", target=target) == 0


OTHER_USER_CLIENT = r"""
import json, sys, urllib.error, urllib.request
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sys.argv[1] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
print(json.dumps([call("GET", "/backup/list"), call("POST", "/backup", {}),
                  call("POST", "/backup/restore", {"backup_path": "x.db"})]))
"""


def test_without_a_token_other_users_may_read_but_change_nothing(server: Server) -> None:
    runuser, python = shutil.which("runuser"), "/usr/bin/python3"
    if os.geteuid() != 0 or runuser is None or not os.access(python, os.X_OK):
        pytest.skip("needs root, runuser and /usr/bin/python3 to act as another local user")
    before = sorted(p.name for p in (server.workdir / "backups").iterdir())
    result = subprocess.run(
        [runuser, "-u", "nobody", "--", python, "-c", OTHER_USER_CLIENT, server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout) == [200, 401, 401]
    assert sorted(p.name for p in (server.workdir / "backups").iterdir()) == before


def test_data_docs_are_served_read_only(client: httpx.Client) -> None:
    """The Prefect UI's Data Docs links (DAGVAULT_REPORTS_URL) open here: GET only, and
    nothing outside DAGVAULT_REPORTS_DIR/data_docs."""
    reports = Path(os.environ["DAGVAULT_REPORTS_DIR"])
    if not (reports / "data_docs" / "index.html").is_file():  # this test run alone
        ok(client.post("/backup", json={"quality": True}))
    (reports / "secret.txt").write_text("not for the web")
    page = client.get("/data-docs/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.text == (reports / "data_docs" / "index.html").read_text()
    assert client.post("/data-docs/index.html").status_code == 405
    assert client.get("/data-docs/%2e%2e/secret.txt").status_code == 404
    assert client.get("/data-docs/../secret.txt").status_code == 404
