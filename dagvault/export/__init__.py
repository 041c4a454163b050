"""Exports for analysts and operators: an SQL dump, or JSON/CSV/Parquet datasets via DuckDB."""

from dagvault.export.run import ExportResult, export_database

__all__ = ["ExportResult", "export_database"]
