"""JSON exports (issue #14): ``json`` is one array per table that any JSON parser reads whole,
``jsonl`` is JSON Lines; both are written row by row in bounded memory, whatever the blob size.

Ledgers are the odd ones of tests/_helpers.py (20 KB signatures, WITHOUT ROWID, unicode,
NULLs, 64-bit integers). Each file is read back with ``json`` (whole document / line by line),
DuckDB ``read_json``, pandas ``read_json`` and polars.

Integration half; the tests that need no server or child process are in
tests/unit/test_export_json.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _helpers import make_odd_ledger, run_python, write_odd_ledger_config
from _shared.export_json import JSON_FORMATS

CliRunner = Callable[..., Any]  # the `cli` fixture of conftest
# Past DuckDB's JSON: before, json failed with OutOfMemoryError from ~600 such rows on.
ROWS_PAST_DUCKDB = 1200


# A child that exports one ledger and reports its own peak RSS (ru_maxrss, KiB on Linux).
_EXPORT_CHILD = r"""
import json, resource, sys
from pathlib import Path
from dagvault.export import export_database
fmt, db, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
try:
    result = export_database(fmt, database=db, out=out)
    outcome = {"rows": result.row_counts}
except Exception as exc:
    outcome = {"error": f"{type(exc).__name__}: {exc}"}
outcome["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(outcome))
"""


def export_in_child(fmt: str, db: Path, out: Path) -> dict[str, Any]:
    proc = run_python(_EXPORT_CHILD, fmt, str(db), str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_json_of_20_kb_blobs_streams_within_the_memory_of_parquet(tmp_path: Path) -> None:
    db = make_odd_ledger(tmp_path / "odd.db", ROWS_PAST_DUCKDB)
    runs = {fmt: export_in_child(fmt, db, tmp_path / fmt) for fmt in ("parquet", *JSON_FORMATS)}
    for fmt in JSON_FORMATS:
        assert "error" not in runs[fmt], runs[fmt]  # was DuckDB's OutOfMemoryError
        assert runs[fmt]["rows"]["tx_log"] == ROWS_PAST_DUCKDB
        # Bounded: row by row it stays well below parquet's Arrow batches (measured: ~110
        # MiB against ~300 MiB); twice parquet's would mean it grows with the table.
        assert runs[fmt]["peak_kib"] < 2 * runs["parquet"]["peak_kib"], runs


def test_cli_export_takes_jsonl_from_default_export_format(
    cli: CliRunner, tmp_path: Path, odd_ledger: Path
) -> None:
    db = odd_ledger
    config = write_odd_ledger_config(tmp_path)
    out = tmp_path / "cli-export"
    proc = cli(
        "export", "--db", str(db), "--out", str(out), "--config", str(config), "--json",
        env={"DEFAULT_EXPORT_FORMAT": "jsonl"},
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["format"] == "jsonl"
    assert result["quality"]["passed"] is True
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "jsonl"
    assert manifest["tables"]["tx_log"]["rows"] == 200

    bad = cli("export", "--format", "ndjson", "--db", str(db), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "jsonl" in bad.stderr


def test_csv_of_the_reported_20_kb_ledger_streams_too(tmp_path: Path) -> None:
    # The ledger: 4,000 transactions with 20 KB signatures. CSV's hex() doubled
    # DuckDB's 4096-row batches of them past its memory limit ("failed to pin block");
    # record batches are now bounded in bytes as well as rows.
    db = make_odd_ledger(tmp_path / "odd.db", 4000)
    run = export_in_child("csv", db, tmp_path / "csv")
    assert "error" not in run, run
    assert run["rows"]["tx_log"] == 4000
