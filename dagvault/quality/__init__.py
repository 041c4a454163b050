"""Data-quality gates: a backup or export is trusted only after its data passes.

Expectations run with Great Expectations (GX Core 1.x) where the data is: SQL inside
the SQLite backup, DuckDB over the exported files. GX is imported only when a gate
runs (it takes seconds), never by importing this package; no Prefect here either.
"""

from __future__ import annotations

from dagvault.quality.backup_gate import check_backup, gate_backup, previous_backup, record_quality
from dagvault.quality.export_gate import check_export, count_exported
from dagvault.quality.ledger_checks import Limits, Previous, check_ledger
from dagvault.quality.report import Outcome, QualityReport, gate_failure

__all__ = [
    "Limits",
    "Outcome",
    "Previous",
    "QualityReport",
    "check_backup",
    "check_export",
    "check_ledger",
    "count_exported",
    "gate_backup",
    "gate_failure",
    "previous_backup",
    "record_quality",
]
