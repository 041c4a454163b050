"""Serve dagvault's deployments without a work pool.

``python deployments/serve.py`` or ``dagvault serve-deployments``: the deployments of
``deployments/prefect.yaml`` (read from it, so the two never drift apart), scheduled from
this machine's configuration and run by this process — each flow run in a subprocess —
until it is stopped (Ctrl-C).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import RunnerDeployment
from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
from prefect.schedules import Cron, Schedule
from prefect.utilities.templating import apply_values
from pydantic import TypeAdapter

from deployments.plan import PREFECT_FILE, PROJECT_DIR, schedule_values


def _flow(entrypoint: str) -> Flow[Any, Any]:
    """``flows/backup.py:backup_flow`` → the flow object of module ``flows.backup``."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(Path(path).with_suffix("").as_posix().replace("/", "."))
    return getattr(module, name)


def _schedule(spec: dict[str, Any]) -> Schedule:
    return Cron(
        spec["cron"],
        timezone=spec.get("timezone", "UTC"),
        active=spec.get("active", True),
        slug=spec.get("slug"),
    )


# As `prefect deploy` reads a deployment's `triggers:` (its automations).
_TRIGGERS: TypeAdapter[list[DeploymentTriggerTypes]] = TypeAdapter(list[DeploymentTriggerTypes])


def runner_deployments(config_file: str | None = None) -> list[RunnerDeployment]:
    document = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    values = {"plan": schedule_values(config_file)}
    deployments = []
    for spec in apply_values(document["deployments"], values):
        limit = spec.get("concurrency_limit")
        deployments.append(
            _flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                parameters=spec.get("parameters") or {},
                schedules=[_schedule(s) for s in spec.get("schedules") or []],
                tags=spec.get("tags"),
                concurrency_limit=ConcurrencyLimitConfig(**limit) if limit else None,
                triggers=_TRIGGERS.validate_python(spec.get("triggers") or []),
            )
        )
    return deployments


def main(config_file: str | None = None) -> None:
    # Flow runs resolve their settings (DAGVAULT_CONFIG, relative paths) like a worker
    # started in the project directory would.
    os.chdir(PROJECT_DIR)
    serve(*runner_deployments(config_file))


if __name__ == "__main__":
    main()
