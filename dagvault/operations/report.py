"""A health report's options (BACKUP_DIR, REPORTS_DIR and the thresholds are settings)."""

from __future__ import annotations

from pydantic import Field

from dagvault.operations.common import Options, Result


class ReportOptions(Options):
    """What a health report can be asked for: `dagvault report`'s flags, the weekly
    deployment's parameters."""

    days: int | None = Field(
        default=None,
        ge=1,
        le=3660,
        description="the days the report covers, up to now; DAGVAULT_REPORT_DAYS if unset (30)",
    )
    charts: bool = Field(
        default=True,
        description="draw the charts (PNG) and the HTML page into DAGVAULT_REPORTS_DIR/health",
    )


class ReportResult(Result):
    """A health report: the document of dagvault.report (its tables, warnings, forecast and
    chart files). `dagvault report --json` prints it; the flow's Markdown artifact and the
    HTML page are drawn from the same document."""
