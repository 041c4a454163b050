"""Dry runs of ``cleanup`` and ``prune``: the plan, worked out where the command runs.

A dry run changes nothing: it is a read, as ``dagvault list`` is, not an operation. So it
is not a Prefect flow run (nothing in the run history, no artifact, no concurrency slot)
and the CLI does not hand it to the node service: it answers in the time of reading the
backup directory, with or without ``dagvault up`` (docs/service.md). The plan is the one
the real run would make from the same directory, in the same result (``--json``).
"""

from __future__ import annotations

from dagvault.config import Settings
from dagvault.operations.retention import RetentionResult
from dagvault.retention import PreRestoreRule, RetentionPolicy
from dagvault.storage.backup_store import backup_store


def _rule(settings: Settings) -> PreRestoreRule:
    return PreRestoreRule(settings.database_path, settings.pre_restore_keep)


def cleanup_plan(settings: Settings) -> RetentionResult:
    """What ``cleanup`` would remove: all but the newest BACKUP_RETENTION_COUNT backups
    (never the newest verified one) and the pre-restore copies beyond their count."""
    outcome = backup_store(settings.backup_dir).cleanup(
        settings.retention_count, dry_run=True, pre_restore=_rule(settings)
    )
    return RetentionResult.model_validate(outcome.to_json())


def prune_plan(policy: RetentionPolicy, settings: Settings) -> RetentionResult:
    """What ``prune`` with the resolved ``policy`` would remove."""
    outcome = backup_store(settings.backup_dir).prune(
        policy, dry_run=True, pre_restore=_rule(settings)
    )
    return RetentionResult.model_validate(outcome.to_json())
