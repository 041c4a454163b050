"""`dagvault up` / `status` / `down`: the real service (its own Prefect server, the HTTP API,
the served deployments) in a temporary state directory, driven by the real CLI."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _helpers import free_port

from dagvault.sample import create_sample_ledger


def dagvault(
    workdir: Path, env: dict[str, str], *args: str, timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagvault_cli", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent (the killed supervisor) never reaped it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


class Service:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.api_port = free_port()
        self.prefect_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
            "DAGVAULT_STATE_DIR": str(self.state),
            "DATABASE_PATH": str(root / "node.db"),
            "BACKUP_DIR": str(root / "backups"),
            # The served deployments look for due runs every second (Prefect's default: 10).
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
        self.ports = ("--api-port", str(self.api_port), "--prefect-port", str(self.prefect_port))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return dagvault(self.root, self.env, *args)

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.cli("up", *self.ports)

    def status(self) -> tuple[int, dict[str, object]]:
        proc = self.cli("status", "--json")
        assert proc.stderr == "", proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def info(self) -> dict[str, object]:
        return json.loads((self.state / "service.json").read_text())

    def prefect(self, path: str, body: dict[str, object] | None = None) -> Any:
        """A call to the service's own Prefect server, with the state directory's secret."""
        auth = base64.b64encode((self.state / "prefect-auth").read_text().strip().encode())
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.prefect_port}/api{path}",
            method="GET" if body is None else "POST",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {auth.decode()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def api(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        token = (self.state / "api-token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("service"))
    create_sample_ledger(svc.root / "node.db", 200, seed=5, nodes=8)
    started = svc.up()
    assert started.returncode == 0, started.stdout + started.stderr
    yield svc
    svc.cli("down")


def test_up_starts_every_part_and_status_reports_them(service: Service) -> None:
    code, report = service.status()
    assert code == 0, report
    assert report["running"] is True and report["status"] == "ok", report["warnings"]
    parts = report["parts"]
    assert isinstance(parts, dict) and set(parts) == {"prefect", "api", "deployments", "watch"}
    assert all(p["running"] for p in parts.values())
    assert report["api_url"] == f"http://127.0.0.1:{service.api_port}"
    assert report["prefect_ui_url"] == f"http://127.0.0.1:{service.prefect_port}"
    # The served deployments' schedules are in the service's own Prefect server (its
    # scheduler adds their runs on its next loop, within a minute).
    deadline = time.monotonic() + 180
    while report["next_scheduled_run"] is None and time.monotonic() < deadline:
        time.sleep(2)
        _, report = service.status()
    upcoming = report["next_scheduled_run"]
    assert isinstance(upcoming, dict) and upcoming["deployment"], report
    # Secrets are the owner's only; the text output names them, never prints them.
    for secret in ("api-token", "prefect-auth"):
        assert (service.state / secret).stat().st_mode & 0o777 == 0o600
    text = service.cli("status")
    assert "Prefect UI" in text.stdout and "Traceback" not in text.stdout + text.stderr
    assert (service.state / "api-token").read_text().strip() not in text.stdout


def test_the_service_prefect_server_refuses_callers_without_its_secret(service: Service) -> None:
    url = f"http://127.0.0.1:{service.prefect_port}/api/flow_runs/filter"
    request = urllib.request.Request(url, method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_a_backup_through_the_service_api_shows_in_status(service: Service) -> None:
    answer = service.api("POST", "/backup", {"backup_type": "Full"})
    assert isinstance(answer, dict) and answer["success"] is True, answer
    code, report = service.status()
    assert code == 0
    newest = report["newest_backup"]
    assert isinstance(newest, dict)
    assert newest["backup_path"] == answer["data"]["backup_path"]
    assert report["rpo_seconds"] == 0  # the ledger has not changed since that backup


def handed_over(service: Service, operation: str) -> int:
    """How many of ``operation``'s runs the service's API has answered for the CLI."""
    log = (service.state / "logs" / "api.log").read_text(encoding="utf-8", errors="replace")
    return log.count(f"POST /operations/{operation} HTTP/1.1")


def test_cli_commands_run_in_the_service_with_the_same_output(service: Service) -> None:
    """Backup, verify, restore, export and cleanup as a user types them while the service
    runs: each is handed over (the API's log has it), prints what an in-process run prints
    (the 📦/✅ event lines on stderr, the result on stdout), and exits 0."""
    before = {op: handed_over(service, op) for op in ("backup", "verify", "restore", "export")}
    made = service.cli("backup", "--json")
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith("📦 Database backup created: "), made.stderr
    info = json.loads(made.stdout)
    assert info["backup_type"] == "Full" and info["verification"]["status"] == "verified"
    assert set(info) >= {"backup_path", "checksum", "metadata", "total_transactions"}
    path = info["backup_path"]
    checked = service.cli("verify", path)
    assert checked.returncode == 0 and "valid" in checked.stdout, checked.stderr
    restored = service.cli("restore", path)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("✅ Database ") and "pre-restore backup" in restored.stdout
    assert "✅ Database restored from backup: " in restored.stderr
    exported = service.cli("export", "--format", "parquet", "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["row_counts"]["transactions"] == 200
    planned = service.cli("cleanup", "--dry-run")
    assert planned.returncode == 0 and "Dry run" in planned.stdout, planned.stderr
    for proc in (made, checked, restored, exported, planned):
        assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
        assert "running here" not in proc.stderr, proc.stderr
    after = {op: handed_over(service, op) for op in before}
    assert all(after[op] == before[op] + 1 for op in before), (before, after)


def test_a_terminal_follows_the_progress_of_a_handed_over_run(service: Service) -> None:
    """On a terminal (stderr), the command asks the service for its run's progress while it
    waits (its bar); in a pipe it never does (the other tests' commands)."""
    asked = _progress_requests(service)
    reader, terminal = os.openpty()
    try:
        made = subprocess.run(
            [sys.executable, "-m", "dagvault_cli", "backup", "--no-quality"],
            cwd=service.root,
            env=service.env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=400,
        )
    finally:
        os.close(terminal)
    shown = _read_all(reader)
    assert made.returncode == 0, shown
    assert "📦 Database backup created: " in shown, shown
    assert "Traceback" not in shown and "ERROR" not in shown, shown
    assert _progress_requests(service) > asked


def _progress_requests(service: Service) -> int:
    log = (service.state / "logs" / "api.log").read_text(encoding="utf-8", errors="replace")
    return log.count("GET /progress/")


def _read_all(reader: int) -> str:
    chunks = []
    try:
        while chunk := os.read(reader, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the terminal's other end is closed
        pass
    finally:
        os.close(reader)
    return b"".join(chunks).decode(errors="replace")


def test_a_failure_in_the_service_exits_as_in_process(service: Service) -> None:
    """A tampered backup fails verification there: exit 4, the event line, Error/Try."""
    made = service.cli("backup", "--json", "--no-quality")
    assert made.returncode == 0, made.stderr
    backup = service.root / json.loads(made.stdout)["backup_path"]
    with backup.open("r+b") as handle:  # one flipped byte in the last page
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    refused = service.cli("restore", str(backup))
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "Error: " in refused.stderr and "Try: " in refused.stderr
    assert refused.stderr.startswith("⚠️  Backup integrity check failed: ")
    assert "Traceback" not in refused.stderr
    # The byte back: a backup the watcher's incrementals may chain on stays whole.
    with backup.open("r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        handle.write(byte)


def test_the_service_declines_other_places_and_the_cli_runs_them_itself(service: Service) -> None:
    """Another database than the service's: declined (409, HandoffDeclined), never run
    there; the CLI then runs the command in-process. Client and server agree on what is
    handed over."""
    from dagvault.config import load_settings, settings_document
    from dagvault.operations.registry import HANDED_OVER
    from dagvault_api.routes.handoff import HANDOVERS

    assert set(HANDOVERS) == HANDED_OVER

    theirs = settings_document(
        load_settings({"database_path": "elsewhere.db"}, environ=service.env), service.root
    )
    request = {"options": {"backup_type": "Full"}, "settings": theirs}
    with pytest.raises(urllib.error.HTTPError) as declined:
        service.api("POST", "/operations/backup", request)
    assert declined.value.code == 409
    answer = json.loads(declined.value.read())
    assert answer["data"]["error_type"] == "HandoffDeclined"
    assert "database_path" in answer["error"]
    assert not (service.root / "elsewhere.db").exists()


def test_two_cli_backups_at_once_both_complete(service: Service) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dagvault_cli", "backup", "--no-quality", "--json"],
            cwd=service.root,
            env=service.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    paths = {json.loads(out)["backup_path"] for out, _ in outputs}
    assert len(paths) == 2


def test_sigkill_of_the_api_mid_backup_is_a_clear_error_at_once(service: Service) -> None:
    """The API dies while it runs a CLI's backup: the CLI says so and exits 9 at once (no
    hang, no second run here); whatever the backup had reached, every backup left verifies
    (nothing half-written looks valid); the supervisor brings the API back, and the next
    command is handed over again."""
    client = subprocess.Popen(
        [sys.executable, "-m", "dagvault_cli", "backup"],
        cwd=service.root,
        env=service.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    api_pid = int(service.info()["children"]["api"])  # type: ignore[index]
    deadline = time.monotonic() + 120
    while not backups_running(service) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(api_pid, signal.SIGKILL)
    _, stderr = client.communicate(timeout=30)
    assert client.returncode == 9, stderr
    assert stderr.startswith("Error: The dagvault service at ") and "Try: " in stderr
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        code, report = service.status()
        if code == 0 and report["parts"]["api"]["pid"] != api_pid:  # type: ignore[index]
            break
        time.sleep(1)
    again = service.cli("verify", "--all")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "INVALID" not in again.stdout and "running here" not in again.stderr


def backups_running(service: Service) -> bool:
    """Whether the service's API is running a backup now (its in-progress gauge)."""
    url = f"http://127.0.0.1:{service.api_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return 'dag_operations_in_progress{operation="backup"} 1.0' in text


def test_up_again_is_a_no_op(service: Service) -> None:
    before = service.info()
    again = service.up()
    assert again.returncode == 0 and "already running" in again.stdout
    assert service.info() == before


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    other = Service(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", other.api_port))
        taken.listen()
        proc = other.up()
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"Error: Port {other.api_port} on 127.0.0.1 is in use")
    assert "Try: " in proc.stderr and "Traceback" not in proc.stderr
    assert not (other.state / "service.json").exists()


def test_sigkill_of_the_supervisor_takes_its_parts_and_up_recovers(service: Service) -> None:
    info = service.info()
    children = list(info["children"].values())  # type: ignore[union-attr]
    os.kill(int(info["supervisor_pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    assert gone_within(children, 60), "a part outlived its supervisor"
    code, report = service.status()
    assert code == 3 and report["running"] is False
    assert not (service.state / "service.json").exists()  # the stale file was cleared
    token = (service.state / "api-token").read_text()
    restarted = service.up()
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert (service.state / "api-token").read_text() == token  # clients keep working
    code, report = service.status()
    assert code == 0, report


def _artifact_keys(service: Service, run_name: str, tag: str) -> set[str]:
    """The artifact keys of the newest run named ``run_name`` with ``tag``, read from the
    stopped Prefect server's own database."""
    database = service.state / "prefect" / "prefect.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as prefect_db:
        rows = prefect_db.execute(
            "SELECT a.key FROM artifact a WHERE a.flow_run_id = (SELECT id FROM flow_run "
            "WHERE name = ? AND EXISTS (SELECT 1 FROM json_each(flow_run.tags) "
            "WHERE value = ?) ORDER BY created DESC LIMIT 1)",
            (run_name, tag),
        ).fetchall()
    return {key for (key,) in rows}


def test_down_lets_a_run_in_flight_finish_then_stops_everything(service: Service) -> None:
    """A scheduled backup is running (deferred: BACKUP_DIR "short of disk" until its bound)
    when `dagvault down` comes: down waits for it, so it ends Completed with its backup
    written, never Crashed half-way; then every part stops, after publishing what the last
    runs show in the Prefect UI (a handed-over command's answer does not wait for its
    artifacts, a clean stop does)."""
    # No gate: this API was restarted (the SIGKILL test), and GX's first import costs seconds.
    made = service.cli("backup", "--json", "--no-quality")
    assert made.returncode == 0, made.stderr
    config = service.root / "busy.json"
    # Always short of disk: the run waits until due + RPO target + grace (6 s), then runs.
    busy = {"min_free_mb": 10**9, "rpo_target_seconds": 6, "defer_grace_seconds": 0}
    config.write_text(json.dumps({"backup": busy}))
    before = set((service.root / "backups").glob("*.meta"))
    deployment = service.prefect("/deployments/name/dagvault-backup/full-backup")
    run = service.prefect(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"config_file": str(config)}},
    )
    deadline = time.monotonic() + 60
    while service.prefect(f"/flow_runs/{run['id']}")["state_type"] != "RUNNING":
        assert time.monotonic() < deadline, "the served deployment never started the run"
        time.sleep(0.2)

    info = service.info()
    pids = [int(info["supervisor_pid"]), *info["children"].values()]  # type: ignore[arg-type, union-attr]
    stopped = service.cli("down")
    assert stopped.returncode == 0 and "dagvault is down" in stopped.stdout
    assert "waiting up to" in stopped.stderr and "backup-node-full" in stopped.stderr, (
        stopped.stderr
    )
    assert set((service.root / "backups").glob("*.meta")) - before, "the run did not finish"
    served = (service.state / "logs" / "deployments.log").read_text()
    assert "Crash detected" not in served and "Crashed" not in served, served
    assert gone_within(pids, 30)
    assert _artifact_keys(service, "backup-node-full", "cli") >= {
        "backup-node",
        "progress-backup-node",
        "summary-backup-node",
    }
    assert service.cli("down").stdout.startswith("dagvault is not running")
    code, _ = service.status()
    assert code == 3
