"""Overrides of deliberate refusals, spelled for the interface that shows the refusal.

Two refusals guard against a mistake rather than a broken file, so an operator may
overrule them: fewer transactions than the baseline (``allow_decrease``) and restoring a
backup whose data-quality gate failed (``allow_gate_failed``). The refusal's hint names
the override as the interface showing it spells it: the CLI flag after ``Try:``, the
request field in the HTTP API's ``hint``, the flow parameter (and the environment
variable and config key, where one exists) in a Prefect run's log and failure message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from dagvault.errors import DagvaultError

E = TypeVar("E", bound=DagvaultError)


@dataclass(frozen=True)
class Override:
    cli: str
    api: str
    flow: str  # Prefect runs and deployments, and the core API


ALLOW_DECREASE = Override(
    cli="`dagvault backup --allow-decrease` (an existing backup: "
    "`dagvault verify --quality --allow-decrease BACKUP`)",
    api='`"allow_decrease": true` in the body of POST /backup (an existing backup: '
    'POST /backup/verify with `"quality": true, "allow_decrease": true`)',
    flow="the flow parameter allow_decrease=true (a deployment: `prefect deployment run "
    "NAME -p allow_decrease=true`), or DAGVAULT_ALLOW_DECREASE=true / quality.allow_decrease "
    "for one run",
)

ALLOW_GATE_FAILED = Override(
    cli="`dagvault restore --allow-gate-failed BACKUP`",
    api='`"allow_gate_failed": true` in the body of POST /backup/restore',
    flow="the flow parameter allow_gate_failed=true of dagvault-restore",
)


def overridable(error: E, hint: str, override: Override) -> E:
    """Give ``error`` the ``hint`` (whose ``{override}`` becomes the override) in each
    interface's spelling."""
    error.hint = hint.replace("{override}", override.flow)
    error.hints = {
        "cli": hint.replace("{override}", override.cli),
        "api": hint.replace("{override}", override.api),
    }
    return error
