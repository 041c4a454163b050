"""`make demo`: the main job on a generated sample ledger, as Prefect flow runs.

full backup → new transactions arrive → incremental backup (each with its data-quality
gate, GX Data Docs under <workdir>/reports) → verify all → list → cleanup keeping N →
restore the newest (full + delta) into a scratch copy and compare → Parquet export for
the analysis notebook.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from dagvault.catalog import list_backups
from dagvault.db import connection
from dagvault.digest import database_digest
from dagvault.sample import create_sample_ledger
from flows.backup import backup_flow
from flows.cleanup import cleanup_flow
from flows.export import export_flow
from flows.restore import restore_flow
from flows.verify import verify_flow


@task
def ensure_ledger(path: str, transactions: int) -> int:
    """Create the sample ledger once; later demo runs reuse it."""
    if not Path(path).exists():
        create_sample_ledger(path, transactions, seed=2026)
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])


@task
def new_transactions_arrive(path: str, count: int) -> int:
    stats = create_sample_ledger(path, count, seed=2026, append=True)
    return stats.transactions


@task
def compare(live: str, restored: str) -> bool:
    """The scratch restore must hold exactly the live ledger (unchanged since the backup)."""
    with connection(Path(live), mode="ro") as a, connection(Path(restored), mode="ro") as b:
        return database_digest(a) == database_digest(b)


@flow(name="dagvault-demo", flow_run_name="demo")
def demo_flow(workdir: str = ".demo", transactions: int = 20_000, keep: int = 2) -> dict[str, Any]:
    work = Path(workdir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    ledger, backups, scratch = work / "blockchain.db", work / "backups", work / "scratch.db"
    reports_dir = str(work / "reports")
    summary: dict[str, Any] = {}
    summary["transactions at start"] = ensure_ledger(str(ledger), transactions)
    first = backup_flow(
        str(ledger), str(backups), description="demo: full backup", reports_dir=reports_dir
    )
    summary["first backup"] = Path(first["backup_path"]).name
    summary["transactions after arrivals"] = new_transactions_arrive(str(ledger), 500)
    second = backup_flow(
        str(ledger),
        str(backups),
        description="demo: after new transactions",
        backup_type="incremental",
        reports_dir=reports_dir,
    )
    summary["second backup"] = (
        f"{Path(second['backup_path']).name} ({second['backup_type']}, {second['file_size']} bytes)"
    )
    summary["quality gates passed"] = sum(b["quality"]["passed"] for b in (first, second))
    summary["GX Data Docs"] = second["quality"]["data_docs"]
    reports = verify_flow(all_backups=True, backup_dir=str(backups))
    summary["backups verified"] = f"{sum(r['valid'] for r in reports)} of {len(reports)}"
    cleaned = cleanup_flow(keep=keep, backup_dir=str(backups))
    summary[f"cleanup (keep {keep})"] = (
        f"{cleaned['removed_backups']} removed, {cleaned['bytes_freed']} bytes freed"
    )
    summary["backups listed"] = len(list_backups(backups))
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    restored = restore_flow(second["backup_path"], database_path=str(scratch))
    summary["restored into scratch copy"] = f"{restored['backup_info']['total_transactions']} tx"
    summary["scratch copy equals live ledger"] = compare(str(ledger), str(scratch))
    exported = export_flow(
        fmt="parquet",
        database_path=str(ledger),
        export_dir=str(work / "exports"),
        reports_dir=reports_dir,
    )
    summary["Parquet export"] = exported["export_path"]
    create_markdown_artifact(
        key="dagvault-demo",
        markdown="| step | result |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in summary.items()),
        description="What the demo did",
    )
    if not summary["scratch copy equals live ledger"]:
        raise RuntimeError("The restored scratch copy differs from the live ledger")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=".demo")
    parser.add_argument("--transactions", type=int, default=20_000)
    args = parser.parse_args()
    summary = demo_flow(workdir=args.workdir, transactions=args.transactions)
    width = max(len(k) for k in summary)
    print("\ndagvault demo — summary")
    for key, value in summary.items():
        print(f"  {key.ljust(width)}  {value}")
    print(
        f"\nBackups: {Path(args.workdir, 'backups')}   (try: .venv/bin/dagvault list "
        f"--backup-dir {Path(args.workdir, 'backups')})"
    )
    docs = Path(args.workdir, "reports", "data_docs", "index.html").absolute()
    print(f"Data-quality reports (GX Data Docs): {docs.as_uri()}")
    print(
        "Analysis notebook over the Parquet export: open notebooks/ledger_analysis.ipynb in "
        "Jupyter or VS Code with\n"
        f"  DAGVAULT_EXPORT_DIR={summary['Parquet export']}\n"
        "  (without it the notebook takes the newest export under ./exports)"
    )
    home = os.environ.get("PREFECT_HOME", "~/.prefect")
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "See these runs in the Prefect UI:\n"
            f"  PREFECT_HOME={home} .venv/bin/prefect server start\n"
            "  then open http://127.0.0.1:4200/runs (flow runs, logs and artifacts)"
        )
    print(
        "Scheduled backups, verify, export and prune as Prefect deployments: docs/production.md, "
        "'Run it in production'\n  (PREFECT_API_URL=http://127.0.0.1:4200/api "
        ".venv/bin/dagvault serve-deployments)"
    )


if __name__ == "__main__":
    main()
