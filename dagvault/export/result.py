"""What an export reports: its own module, so that the options and result models (and the
CLI that imports them) do not load DuckDB, PyArrow and NumPy with the export code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ExportResult:
    success: bool
    export_path: str
    format: str
    manifest_path: str
    row_counts: dict[str, int]
    total_bytes: int
    source: dict[str, Any]
    timestamp: str
    duration_seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
