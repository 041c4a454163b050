"""Exports for analysts and operators: an SQL dump, or JSON/JSON Lines/CSV/Parquet datasets."""

from dagvault.export.run import ExportResult, export_database

__all__ = ["ExportResult", "export_database"]
