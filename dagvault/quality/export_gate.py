"""The export gate: the exported datasets hold exactly the snapshot's rows.

DuckDB counts the rows of each file listed in ``manifest.json`` (Parquet from its
footer, CSV by streaming it); JSON and JSON Lines are parsed object by object with the
stdlib's strict decoder (DuckDB's JSON reader needs memory in proportion to the largest
object). Only the resulting counts table, one row per table, goes to GX, which validates
that exported equals snapshot. SQL dumps are counted while they are written; this gate
covers the dataset formats.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import journal
from dagvault.errors import VerificationError
from dagvault.export.literal import duckdb_name
from dagvault.quality.gx_runner import Asset, Expect, run_on_dataframe
from dagvault.quality.report import QualityReport

_READERS = {
    "parquet": "SELECT count(*) FROM read_parquet(?)",
    # all_varchar and a fixed dialect: nothing is sniffed or typed, rows are only counted.
    "csv": "SELECT count(*) FROM read_csv(?, header = true, all_varchar = true, "
    "delim = ',', quote = '\"', escape = '\"')",
}


def _manifest(export_path: Path) -> dict[str, Any]:
    path = export_path / "manifest.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(
            f"Export {export_path} has no readable manifest.json: {exc}",
            "The export is incomplete; export again with `dagvault export`.",
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("tables"), dict):
        raise VerificationError(f"Export {export_path}: manifest.json has no 'tables' map")
    return document


def count_exported(export_path: Path) -> dict[str, int | None]:
    """Rows per table of a dataset export; None for a missing file (or, for JSON, a file
    that does not parse)."""
    import duckdb

    from dagvault.export.json_rows import JSON_FORMATS

    manifest = _manifest(export_path)
    fmt = str(manifest.get("format"))
    if fmt in JSON_FORMATS:
        return {
            table: _count_json(export_path / str(entry.get("file", "")), fmt)
            for table, entry in manifest["tables"].items()
        }
    reader = _READERS[fmt]
    con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
    try:
        con.execute("SET enable_progress_bar = false")  # it would land on the CLI's stdout
        counts: dict[str, int | None] = {}
        for table, entry in manifest["tables"].items():
            file = export_path / str(entry.get("file", ""))
            if not entry.get("file") or not file.is_file():
                counts[table] = None
                continue
            with duckdb_name(file) as name:
                counts[table] = int(con.execute(reader, [name]).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()
    return counts


def _count_json(file: Path, fmt: str) -> int | None:
    from dagvault.export.json_rows import count_records

    try:
        return count_records(file, fmt) if file.is_file() else None
    except ValueError:
        return None  # reported as a table without a readable file


def check_export(
    export_path: Path,
    snapshot_counts: dict[str, int],
    *,
    reports_dir: Path | None,
    fmt: str | None = None,
    journal_dir: Path | None = None,
) -> QualityReport:
    """Validate an export against the row counts of the snapshot it was taken from (a
    failure is recorded in ``journal_dir``'s operations journal)."""
    started = time.monotonic()
    checked_at = datetime.now(UTC).isoformat(timespec="seconds")
    if fmt == "sql" or (fmt is None and export_path.is_file()):
        return QualityReport(
            str(export_path),
            True,
            [],
            ["SQL dumps are counted while written; the export gate covers json/jsonl/csv/parquet"],
            None,
            checked_at,
        )
    import pandas as pd

    exported = count_exported(export_path)
    tables = sorted(set(snapshot_counts) | set(exported))
    frame = pd.DataFrame(
        {
            "table": tables,
            "exported": [exported.get(t) for t in tables],
            "snapshot": [snapshot_counts.get(t) for t in tables],
        }
    ).astype({"exported": "Int64", "snapshot": "Int64"})
    summary = ", ".join(f"{t} {exported.get(t)}/{snapshot_counts.get(t)}" for t in tables)
    differing = [t for t in tables if exported.get(t) != snapshot_counts.get(t)]
    asset = Asset(
        "export counts",
        [
            Expect(
                "every_table_exported",
                "ExpectColumnValuesToNotBeNull",
                {"column": "exported"},
                describe="tables of the snapshot without a readable file",
            ),
            Expect(
                "export_rows_equal_snapshot",
                "ExpectColumnPairValuesToBeEqual",
                {"column_A": "exported", "column_B": "snapshot"},
                describe=f"exported/snapshot rows: {summary}"
                + (f"; differing: {', '.join(differing)}" if differing else ""),
            ),
        ],
    )
    outcomes, index = run_on_dataframe(
        frame,
        asset,
        suite_prefix="export",  # one suite for all exports; each run is named after its export
        run_name=export_path.name,
        reports_dir=reports_dir,
    )
    passed = all(o.success for o in outcomes)
    if not passed:
        journal.record(
            journal_dir, "export", journal.QUALITY_GATE_FAILED, seconds=time.monotonic() - started
        )
    return QualityReport(
        subject=str(export_path),
        passed=passed,
        expectations=outcomes,
        warnings=[],
        data_docs_index=index,
        checked_at=checked_at,
    )
