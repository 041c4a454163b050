"""dagvault's Prefect Automations, as code: tell operators when something fails.

    python -m deployments.automations --block slack-webhook/ops-alerts

after ``prefect deploy`` (or beside ``dagvault serve-deployments``), with PREFECT_API_URL
pointing at the server. It creates or updates, by name, one automation per failure an
operator must hear about, each sending to the notification block the operator chose
(Slack, email, a webhook…; docs/prefect-ui.md):

- a failed or crashed backup run (dagvault-backup, its scheduled and fleet forms);
- a failed data-quality gate (the ``dagvault.gate.failed`` event of any backup, verify or
  export run: a gate failure fails its run too, so a failed backup's gate is told twice,
  as what failed and why);
- a failed or crashed restore drill (the flow ``dagvault-restore-drill``);
- a replica lagging more than its threshold (the replicate flow's
  ``dagvault.replica.lagging`` event; threshold: the flow's ``max_lag_hours``).

Automations run on the Prefect server, so they also report a worker that died with its
run (Crashed), which the flows' own on_failure hook (DAGVAULT_NOTIFY_BLOCK) cannot.
"""

from __future__ import annotations

import argparse
import sys
from uuid import UUID

from prefect.automations import (
    Automation,
    AutomationCore,
    EventTrigger,
    Posture,
    SendNotification,
)
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from dagvault.config import load_settings
from dagvault.errors import ConfigError, DagvaultError
from flows.replicate import LAGGING_EVENT
from tasks.quality import GATE_FAILED_EVENT

BACKUP_FLOWS = ["dagvault-backup", "dagvault-scheduled-backup", "dagvault-fleet-backup"]
RESTORE_DRILL_FLOW = "dagvault-restore-drill"
RUN_FAILED = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}

_RUN_BODY = (
    "{{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n"
    "tags: {{ flow_run.tags | join(', ') }}\n"
    "run: {{ flow_run | ui_url }}"
)
_GATE_BODY = (
    "The data-quality gate {{ event.payload.verdict }} for {{ event.payload.subject }} "
    "(database {{ event.resource.name }}).\n"
    "run: {{ flow_run.name }} {{ flow_run | ui_url }}"
)
_LAG_BODY = (
    "Replica {{ event.resource.name }} of {{ event.resource['dagvault.database'] }} lags "
    "{{ event.payload.lag_seconds if event.payload.lag_seconds is not none else 'without "
    "any backup' }} s behind the local backups (threshold {{ event.payload.max_lag_hours }} "
    "h).\nrun: {{ flow_run.name }} {{ flow_run | ui_url }}"
)


def _failed_run_trigger(flows: list[str]) -> EventTrigger:
    return EventTrigger(
        expect=RUN_FAILED,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": flows},
        posture=Posture.Reactive,
        threshold=1,
    )


def _event_trigger(event: str, resource: str) -> EventTrigger:
    return EventTrigger(
        expect={event},
        match={"prefect.resource.id": resource},
        posture=Posture.Reactive,
        threshold=1,
    )


def automations(block_document_id: UUID) -> list[Automation]:
    """The automations, each notifying ``block_document_id``."""

    def notify(subject: str, body: str) -> list[SendNotification]:
        return [SendNotification(block_document_id=block_document_id, subject=subject, body=body)]

    return [
        Automation(
            name="dagvault: backup failed",
            description="A backup run failed or crashed (verification, gate, lock, disk…).",
            trigger=_failed_run_trigger(BACKUP_FLOWS),
            actions=notify("dagvault: backup {{ flow_run.state.name }}", _RUN_BODY),
        ),
        Automation(
            name="dagvault: quality gate failed",
            description="A backup or export failed its data-quality gate.",
            trigger=_event_trigger(GATE_FAILED_EVENT, "dagvault.database.*"),
            actions=notify("dagvault: quality gate failed", _GATE_BODY),
        ),
        Automation(
            name="dagvault: restore drill failed",
            description="The restore drill could not restore and check a backup.",
            trigger=_failed_run_trigger([RESTORE_DRILL_FLOW]),
            actions=notify("dagvault: restore drill {{ flow_run.state.name }}", _RUN_BODY),
        ),
        Automation(
            name="dagvault: replication lag",
            description="A replica holds no backup, or its newest is older than the threshold.",
            trigger=_event_trigger(LAGGING_EVENT, "dagvault.replica.*"),
            actions=notify("dagvault: replica lagging", _LAG_BODY),
        ),
    ]


def notification_block_id(block: str) -> UUID:
    """The id of the notification block ``<type-slug>/<name>`` on the server."""
    slug, _, name = block.partition("/")
    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(name, slug, include_secrets=False)
    except ObjectNotFound:
        raise ConfigError(
            f"No notification block {block} on the Prefect server",
            "Create it in the UI (Blocks → +) or with `prefect block create "
            f"{slug or 'slack-webhook'}`, then apply the automations again.",
        ) from None
    return document.id


def apply(block: str) -> list[Automation]:
    """Create the automations, or update those of the same name (so applying twice changes
    nothing and a changed block is picked up)."""
    block_id = notification_block_id(block)
    applied = []
    with get_client(sync_client=True) as client:
        for automation in automations(block_id):
            # Only the fields set here: an update refuses the server-side owner_resource.
            core = AutomationCore(**automation.model_dump(exclude={"id"}, exclude_unset=True))
            existing = client.read_automations_by_name(automation.name)
            for duplicate in existing[1:]:
                client.delete_automation(duplicate.id)
            if existing:
                client.update_automation(existing[0].id, core)
                automation.id = existing[0].id
            else:
                automation.id = client.create_automation(core)
            applied.append(automation)
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.automations", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--block",
        help="the notification block to send to, <type-slug>/<name> (e.g. slack-webhook/ops, "
        "sendgrid-email/oncall, custom-webhook/pager); default: DAGVAULT_NOTIFY_BLOCK",
    )
    parser.add_argument("--config", help="dagvault's config file (for notify.block)")
    args = parser.parse_args(argv)
    try:
        block = args.block or load_settings(config_file=args.config).notify_block
        if not block:
            raise ConfigError(
                "No notification block to send to",
                "Pass --block <type-slug>/<name>, or set DAGVAULT_NOTIFY_BLOCK.",
            )
        for automation in apply(block):
            print(f"applied {automation.name!r} → {block}")
    except DagvaultError as exc:
        print(f"Error: {exc.message}\nTry: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
