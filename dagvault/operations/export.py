"""An export's options and result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from dagvault.config import EXPORT_FORMATS
from dagvault.export import result
from dagvault.operations.common import MAX_PATH_CHARS, Options, model_of

ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]


class ExportOptions(Options):
    """What an export can be asked for: `dagvault export`'s flags, the body of
    POST /backup/export (which adds ``export_path``; ``fmt`` is spelt ``format`` there), the
    nightly export deployment's parameters. EXPORT_DIR, DATABASE_PATH and the key are
    settings."""

    # The HTTP body spells fmt "format" (the flow's parameter cannot: a builtin).
    model_config = ConfigDict(populate_by_name=True)

    fmt: ExportFormat | None = Field(
        default=None, alias="format", description="DEFAULT_EXPORT_FORMAT if unset"
    )
    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="export this backup instead of the live database",
    )
    tables: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    quality: bool = Field(default=True, description="run the export gate (DuckDB row counts)")


ExportResult = model_of(
    result.ExportResult,
    "ExportResult",
    """An export written: its files, manifest and row counts, the export gate's verdict and
    whether the data files are encrypted. `dagvault export --json` prints it;
    POST /backup/export answers it as ``data.result``.""",
    quality=(dict[str, Any] | None, None),
    encrypted=(bool, False),
)
