"""What a data-quality gate found: one outcome per expectation, plus warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dagvault.errors import QualityGateFailed
from dagvault.overrides import ALLOW_DECREASE, overridable


@dataclass(frozen=True)
class Outcome:
    name: str  # dagvault's stable name of the check, e.g. "hash_unique"
    expectation: str  # the GX expectation type that decided it
    table: str | None
    column: str | None
    success: bool
    observed_value: Any  # JSON scalar: a row count, or the number of unexpected rows
    details: str = ""

    def problem(self) -> str:
        where = ".".join(part for part in (self.table, self.column) if part)
        text = f"{self.name}" + (f" ({where})" if where else "")
        text += f": observed {self.observed_value}"
        return text + (f"; {self.details}" if self.details else "")


@dataclass
class QualityReport:
    subject: str  # the backup or export that was checked
    passed: bool
    expectations: list[Outcome]
    warnings: list[str] = field(default_factory=list)
    data_docs_index: str | None = None
    checked_at: str = ""

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.expectations if not o.success]

    def problems(self) -> list[str]:
        return [o.problem() for o in self.failures]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "checked_at": self.checked_at,
            "expectations": [asdict(o) for o in self.expectations],
            "warnings": list(self.warnings),
            "data_docs": self.data_docs_index,
        }


def gate_failure(report: dict[str, Any], what: str) -> QualityGateFailed:
    """The error that fails a run whose gate (``report``, as JSON) did not pass."""
    failed = [e for e in report["expectations"] if not e["success"]]
    problems = [Outcome(**e).problem() for e in failed]
    docs = report.get("data_docs")
    hint = f"See the GX Data Docs: {docs}. " if docs else ""
    error = QualityGateFailed(
        f"Data-quality gate failed for {report['subject']}: {'; '.join(problems)}",
        hint + f"Investigate the ledger's data; {what} is kept but is not trusted.",
        problems=problems,
    )
    if any(e["name"] == "transactions_not_decreased" for e in failed):
        overridable(
            error,
            hint + "Transactions of an append-only ledger never decrease, and no restore or "
            "import-sql explains this drop (they move the baseline themselves): investigate "
            "the data loss. If the drop is intended (the ledger was pruned or reset), accept "
            "it with {override}.",
            ALLOW_DECREASE,
        )
    return error
