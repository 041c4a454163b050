"""Failure notification: the ``on_failure``/``on_crashed`` hook of every dagvault flow.

Operators point DAGVAULT_NOTIFY_BLOCK (or ``notify.block`` in the config file) at one of
Prefect's notification blocks — Slack, Microsoft Teams, Mattermost, Discord, PagerDuty,
Opsgenie, SendGrid email, a custom webhook — created in the UI or with ``prefect block``.
Only the top-level run notifies: a failed backup inside a scheduled or fleet run is
reported once, by the run an operator looks at.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import prefect.blocks.notifications  # noqa: F401  (registers the notification block types)
from prefect import Flow
from prefect.blocks.core import Block
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_UI_URL
from prefect.states import State

from dagvault.config import Settings, env_var, load_settings
from dagvault.errors import ConfigError

log = logging.getLogger("dagvault.notify")


def failure_message(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> str:
    lines = [
        f"dagvault: {flow.name} run {flow_run.name!r} {state.name}",
        f"why: {state.message or 'no message'}",
        # JSON, as the UI shows them (a dict's repr reads badly in a chat message).
        f"parameters: {json.dumps(flow_run.parameters, default=str, ensure_ascii=False)}",
    ]
    if flow_run.deployment_id:
        lines.append(f"deployment: {flow_run.deployment_id}")
    if ui := PREFECT_UI_URL.value():
        lines.append(f"run: {ui}/runs/flow-run/{flow_run.id}")
    return "\n".join(lines)


def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    if flow_run.parent_task_run_id is not None:
        return
    target = _notify_block(flow_run.parameters)
    if not target:
        return
    try:
        block: Any = Block.load(target)
        block.notify(
            failure_message(flow, flow_run, state),
            subject=f"dagvault: {flow.name} {state.name}",
        )
    except Exception as exc:  # a broken channel must not hide the run's own failure
        log.error("Failure notification to %s failed: %s", target, exc)


def _notify_block(parameters: dict[str, Any]) -> str | None:
    """The run's own settings' block; a deployment's run (no settings handed down) reads
    the configuration."""
    given = parameters.get("settings")  # as the run recorded it: JSON
    if given is not None:
        return given.notify_block if isinstance(given, Settings) else given.get("notify_block")
    try:
        return load_settings(config_file=parameters.get("config_file")).notify_block
    except ConfigError:
        # A broken config may be the very failure to report: the environment still counts.
        return os.environ.get(env_var("notify_block") or "") or None


HOOKS: dict[str, Any] = {"on_failure": [notify_failure], "on_crashed": [notify_failure]}
