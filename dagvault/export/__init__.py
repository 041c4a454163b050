"""Exports for analysts and operators: an SQL dump, or JSON/JSON Lines/CSV/Parquet datasets.

``export_database`` and ``ExportResult`` load on first use: they pull in DuckDB, PyArrow
and NumPy (half a second), which a command that only decrypts or lists must not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagvault.export.run import ExportResult, export_database

__all__ = ["ExportResult", "export_database"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dagvault.export import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
