"""The ledger watcher for real: `dagvault watch` on a live odd ledger with a writer, its events
read back from the session's Prefect server, and the incremental-backup deployment's
triggers (deployments/prefect.yaml, as `serve-deployments` creates them) deployed, read back
and fired by those events."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from _helpers import add_odd_transactions, make_odd_ledger, write_odd_ledger_config
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterTags,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.schemas.automations import Automation
from prefect.events.schemas.events import ReceivedEvent
from prefect.settings import PREFECT_API_URL, temporary_settings

from dagvault.catalog import list_backups
from dagvault.config import load_settings
from dagvault.watch import CHANGED, SIGNIFICANT
from deployments.serve import runner_deployments
from flows.backup import backup_flow

# Under its own name, so that no served `incremental-backup` (another file's) runs what its
# triggers start; its runs stay scheduled, for the test to read.
DEPLOYMENT = "incremental-backup-watch-test"
WATCH = [sys.executable, "-m", "dagvault_cli", "watch"]


def _until(check: Any, what: str, seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(1)
    return found


def _backup_runs_ended(prefect_api_url: str) -> bool:
    """Every backup run of the watched ledger has ended (two at least)."""
    with (
        temporary_settings({PREFECT_API_URL: prefect_api_url}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["db:watched-ledger", "backup"])
            )
        )
    return len(runs) >= 2 and all(run.state is not None and run.state.is_final() for run in runs)


def _verified(directory: Path) -> list[Any]:
    """The backups in ``directory`` whose verification is done, newest first."""
    return [
        e
        for e in list_backups(directory)
        if e.info is not None and e.info.verification.status == "verified"
    ]


@pytest.fixture(scope="module")
def deployed(prefect_api_url: str) -> Iterator[tuple[UUID, list[Automation]]]:
    """The incremental-backup deployment with its triggers, created on the server."""
    (deployment,) = [d for d in runner_deployments() if d.name == "incremental-backup"]
    deployment.name = DEPLOYMENT
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        deployment_id = deployment.apply()
        with get_client(sync_client=True) as client:
            automations = client.read_resource_related_automations(
                f"prefect.deployment.{deployment_id}"
            )
        yield deployment_id, automations
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            ):
                client.delete_flow_run(run.id)
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
            client.delete_deployment(deployment_id)


@pytest.fixture(scope="module")
def watched(
    prefect_api_url: str, deployed: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A real `dagvault watch --take-backups` on an odd ledger while a writer commits 30
    transactions in 10 commits, stopped with SIGTERM (as `dagvault down` stops it) once it
    has taken a backup."""
    root = tmp_path_factory.mktemp("watch")
    # Big enough that 30 new transactions change well under half its pages (more would
    # make the incremental a full backup: dagvault.delta's rule).
    ledger = make_odd_ledger(root / "watched-ledger.db", 300, blob_size=2_400)
    config = write_odd_ledger_config(
        root, watch={"significant_transactions": 25, "interval_seconds": 0.2}
    )
    log = root / "watch.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api_url,
        "DATABASE_PATH": str(ledger),
        "BACKUP_DIR": str(root / "backups"),
        "BACKUP_MAX_LOAD_PER_CPU": "0",  # (the test machine's load would defer the backup)
    }
    with log.open("wb") as out:
        watcher = subprocess.Popen(
            [*WATCH, "--take-backups", "--config", str(config)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _until(lambda: "👀 Watching" in log.read_text(), "the watcher started")
        for _ in range(10):
            add_odd_transactions(ledger, 3, blob_size=2_400)
            time.sleep(0.3)
        # One backup for the first change, one for the significant change (at once, though
        # within the first one's window): stopped once both runs have ended, as SIGTERM
        # during one crashes that flow run (Prefect's own handler). A backup's .meta says
        # "verified" before its run ends (the gate and the run's display follow).
        _until(
            lambda: len(_verified(root / "backups")) == 2 and _backup_runs_ended(prefect_api_url),
            "two backups by the watcher, their runs ended",
            180,
        )
    finally:
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(60)
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        seen: list[str] = []  # what the server had at the last look, for a failure to show

        def events() -> list[ReceivedEvent]:
            with get_client(sync_client=True) as client:
                page = client.read_events(
                    EventFilter(
                        event=EventNameFilter(prefix=["dagvault.ledger."]),
                        resource=EventResourceFilter(id=["dagvault.ledger.watched-ledger"]),
                    ),
                    limit=50,  # the server's maximum (the client's default is 100)
                )
            names = {e.event for e in page.events}
            reported = sum(e.payload["new_transactions"] for e in page.events if e.event == CHANGED)
            seen[:] = [f"{e.event} {e.payload}" for e in page.events]
            # The last `changed` event is the one the watcher flushes as it stops: it may
            # reach the server after the others.
            return page.events if {CHANGED, SIGNIFICANT} <= names and reported >= 30 else []

        try:
            received = _until(events, "both events reached the Prefect server")
        except AssertionError as failed:
            raise AssertionError(
                f"{failed}\nevents on the server: {seen}\nwatcher output:\n{log.read_text()}"
            ) from None
    return {
        "code": code,
        "output": log.read_text(),
        "events": received,
        "ledger": ledger,
        "backups": _verified(root / "backups"),
    }


def test_the_watcher_stops_cleanly_and_quietly(watched: dict[str, Any]) -> None:
    assert watched["code"] == 0, watched["output"]
    assert "Traceback" not in watched["output"] and "ERROR" not in watched["output"]
    assert "📈 Significant change: " in watched["output"]


def test_the_watcher_takes_the_backups_itself_with_take_backups(watched: dict[str, Any]) -> None:
    significant, changed = watched["backups"]  # newest first
    assert changed.info.metadata["description"] == "dagvault watch: changed"
    assert changed.info.backup_type == "Full"  # there was none before
    assert re.fullmatch(
        r"dagvault watch: (2[5-9]|30) new transactions \(watch.significant_transactions 25\)",
        significant.info.metadata["description"],
    )
    assert significant.info.backup_type == "Incremental"
    assert significant.info.metadata["parent"] == changed.path.name
    assert watched["output"].count("📦 Database backup created") == 2


def test_the_events_name_the_ledger_and_what_changed(watched: dict[str, Any]) -> None:
    events: list[ReceivedEvent] = sorted(watched["events"], key=lambda e: e.occurred)
    for event in events:
        assert event.resource["dagvault.database.path"] == str(watched["ledger"].resolve())
    changed = [e for e in events if e.event == CHANGED]
    # All 30 transactions reported, in fewer events than commits (one per 5 s at most).
    assert sum(e.payload["new_transactions"] for e in changed) == 30
    assert len(changed) < 10
    assert all(e.payload["wal_growth_bytes"] > 0 for e in changed)
    (significant,) = [e for e in events if e.event == SIGNIFICANT]  # 25 of 30: once
    new = significant.payload["new_transactions"]
    assert 25 <= new <= 30
    assert significant.payload["reasons"] == [
        f"{new} new transactions (watch.significant_transactions 25)"
    ]


def test_the_triggers_are_deployed_as_automations(deployed: Any) -> None:
    deployment_id, automations = deployed
    by_name = {a.name: a for a in automations}
    assert set(by_name) == {"dagvault-ledger-changed", "dagvault-ledger-significant-change"}
    changed = by_name["dagvault-ledger-changed"]
    assert changed.enabled
    assert changed.trigger.expect == {CHANGED}
    assert changed.trigger.posture == "Reactive" and changed.trigger.threshold == 1
    assert changed.trigger.within.total_seconds() == 30  # half the default RPO target
    assert changed.trigger.for_each == {"prefect.resource.id"}
    assert changed.trigger.match.model_dump()["prefect.resource.id"] == "dagvault.ledger.*"
    significant = by_name["dagvault-ledger-significant-change"]
    assert significant.trigger.expect == {SIGNIFICANT}
    assert significant.trigger.within.total_seconds() == 0
    for automation in automations:
        (action,) = automation.actions
        assert action.type == "run-deployment" and action.deployment_id == deployment_id
        assert action.parameters["quality"] is False


def test_the_watcher_events_start_incremental_backup_runs(
    watched: dict[str, Any], deployed: Any, prefect_api_url: str
) -> None:
    deployment_id, _ = deployed

    def runs() -> list[Any]:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        return found if len(found) >= 2 else []

    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        found = _until(runs, "a run for each trigger")
    descriptions = {run.parameters["description"] for run in found}
    assert descriptions == {
        "dagvault watch: the ledger changed",
        "dagvault watch: a significant change",
    }
    for run in found:  # the deployment's own parameters, with the trigger's on top
        assert run.parameters["backup_type"] == "incremental"
        assert run.parameters["defer_when_busy"] is True


def test_a_deployment_backup_waits_while_the_disk_is_short_then_runs_at_the_bound(
    prefect_api_url: str, tmp_path: Path
) -> None:
    ledger = make_odd_ledger(tmp_path / "deferred.db", 10, blob_size=2_400)
    settings = load_settings(
        {
            "database_path": ledger,
            "backup_dir": tmp_path / "backups",
            "min_free_mb": 2**40,  # no disk has that much free: the backup must wait
            "max_load_per_cpu": 0,  # (the test machine's load is no reason here)
            "rpo_target_seconds": 1,
            "defer_grace_seconds": 2,
        },
        config_file=write_odd_ledger_config(tmp_path),
    )
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        state = backup_flow(
            settings=settings,
            backup_type="incremental",
            quality=False,
            defer_when_busy=True,
            return_state=True,
        )
        assert state.is_completed(), state
        info = state.result()
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
    assert Path(info["backup_path"]).is_file()  # it ran anyway, within the bound
    deferred = info["deferred"]
    assert deferred["ran_anyway"] is True and 0 < deferred["seconds"] < 60
    (reason,) = deferred["reasons"]
    assert "below BACKUP_MIN_FREE_MB 1099511627776" in reason
    (waited,) = [t for t in task_runs if t.name.startswith("wait-for-resources")]
    assert waited.state is not None and waited.state.message is not None
    assert waited.state.message.startswith("deferred ")
    assert waited.state.message.endswith(f"({reason}); ran anyway at the bound")
