"""The health report (dagvault.report) as rows, Markdown, PNG charts and one HTML page.

Every function here reads the report's JSON document (``HealthReport.to_json()``, what the
flow returns and `--json` prints), so the terminal, the Prefect artifact and the page
show the same numbers however the report reached them.

Charts are drawn with matplotlib's object API (``Figure``, no pyplot): no global state,
no display, safe in a flow's worker thread. The HTML page embeds its images as data: URLs,
so it can be mailed or attached as one file. Files go to ``<reports_dir>/health/``
(beside the GX Data Docs), each written temp → fsync → rename, the page last; a new
report replaces the previous one.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from dagvault.fsio import ensure_dir, write_atomic
from dagvault.report import RECENT_DAYS

Report = dict[str, Any]  # HealthReport.to_json()

HEALTH_DIR = "health"
PAGE = "health-report.html"


def health_dir(reports_dir: Path) -> Path:
    return reports_dir.absolute() / HEALTH_DIR


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def is_empty(report: Report) -> bool:
    return not report["backups"] and not report["operations"]


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """(metric, value) of the report's headline numbers."""
    backups = report["backups"]
    gaps = [point["seconds"] for point in report["rpo"]]
    growth = report["ledger_growth_per_day"]
    drills, disk = report["drills"], report["disk"]
    return [
        ("backups in window", str(len(backups))),
        (f"failure rate, last {RECENT_DAYS} d", _percent(report["failure_rate_recent"])),
        ("failure rate, before", _percent(report["failure_rate_before"])),
        *_trends(backups),
        ("RPO now (age of newest backup)", _duration(report["current_rpo_seconds"])),
        ("RPO, worst in window", _duration(max(gaps)) if gaps else "-"),
        ("ledger growth per day", _growth(growth)),
        (
            "restore drills (failed)",
            f"{drills['runs']} ({drills['failed']})" if drills["runs"] else "none",
        ),
        ("last drill RTO", _duration(drills["last_rto_seconds"])),
        ("free space", _size(disk["free_bytes"])),
        ("net growth per day", _size(disk["growth_bytes_per_day"])),
        (
            "days until full",
            "-" if disk["days_until_full"] is None else f"{disk['days_until_full']:.0f}",
        ),
    ]


def _trends(backups: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Size and duration, first and last of the window, per backup type (a full backup
    and an incremental are not comparable)."""
    rows = []
    for kind in sorted({b["kind"] for b in backups}):
        mine = [b for b in backups if b["kind"] == kind]
        rows.append((f"{kind} size, first → last", _trend([b["file_size"] for b in mine], _size)))
        rows.append(
            (f"{kind} duration, first → last", _trend([b["seconds"] for b in mine], _duration))
        )
    return rows


def _trend(values: list[float] | list[int], show: Callable[[float], str]) -> str:
    if not values:
        return "-"
    return show(values[0]) if len(values) == 1 else f"{show(values[0])} → {show(values[-1])}"


def _growth(growth: dict[str, float | None]) -> str:
    if growth["transactions"] is None:
        return "-"
    text = f"{growth['transactions']:,.0f} transactions"
    return text + (f", {_size(growth['bytes'])}" if growth["bytes"] is not None else "")


def operation_rows(report: Report) -> list[tuple[str, ...]]:
    """(operation, runs, failed, success rate, median duration, longest) per operation."""
    return [
        (
            s["operation"],
            str(s["runs"]),
            str(s["failed"]),
            _percent(s["success_rate"]),
            _duration(s["median_seconds"]),
            _duration(s["max_seconds"]),
        )
        for s in report["operations"]
    ]


OPERATION_HEADERS = ("operation", "runs", "failed", "success", "median", "longest")


def _md_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def title(report: Report) -> str:
    return f"Backup health of {report['backup_dir']}"


def period(report: Report) -> str:
    end = datetime.fromisoformat(report["generated_at"])
    return f"{report['window_days']} days to {end:%Y-%m-%d %H:%M} UTC"


EMPTY = "No backups and no journaled operations yet: nothing to report."


def markdown(report: Report) -> str:
    """The report as Markdown (the flow's Prefect artifact)."""
    parts = [f"# {title(report)}", period(report)]
    if is_empty(report):
        parts.append(EMPTY)
        return "\n\n".join(parts) + "\n"
    parts += [f"**⚠️ {w}**" for w in report["warnings"]] or ["No warnings."]
    parts.append(_md_table(("metric", "value"), summary_rows(report)))
    parts.append(_md_table(OPERATION_HEADERS, operation_rows(report)))
    return "\n\n".join(parts) + "\n"


def _figure(window: tuple[datetime, datetime], title: str, ylabel: str):  # type: ignore[no-untyped-def]
    """A chart over the report's window (also when all its points lie on one day)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.set_xlim(*window)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure, axes


def _png(figure) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def charts(report: Report) -> dict[str, bytes]:
    """PNG images by file name; none for an empty report."""
    images: dict[str, bytes] = {}
    end = _when(report["generated_at"])
    # To the end of today: a day's bar spans its day.
    window = (end - timedelta(days=report["window_days"]), end + timedelta(days=1))
    per_day = report["runs_per_day"]
    if per_day:
        figure, axes = _figure(window, "Runs per day", "runs")
        dates = [date.fromisoformat(d) for d in per_day]
        failed = [day["failed"] for day in per_day.values()]
        ok = [day["runs"] - day["failed"] for day in per_day.values()]
        bars = {"width": 0.9, "align": "edge"}
        axes.bar(dates, ok, color="tab:green", label="succeeded", **bars)
        axes.bar(dates, failed, bottom=ok, color="tab:red", label="failed", **bars)
        axes.legend(loc="upper left")
        images["outcomes.png"] = _png(figure)
    backups = report["backups"]
    if backups:
        times = [_when(b["time"]) for b in backups]
        figure, axes = _figure(window, "Backup size", "MiB")
        for kind in sorted({b["kind"] for b in backups}):
            mine = [b for b in backups if b["kind"] == kind]
            axes.plot(
                [_when(b["time"]) for b in mine],
                [b["file_size"] / 2**20 for b in mine],
                "o-",
                label=kind,
            )
        axes.legend(loc="upper left")
        images["sizes.png"] = _png(figure)
        figure, axes = _figure(window, "Backup duration", "seconds")
        axes.plot(times, [b["seconds"] for b in backups], "o-")
        images["durations.png"] = _png(figure)
        figure, axes = _figure(window, "Ledger growth", "transactions")
        axes.plot(times, [b["transactions"] for b in backups], "o-")
        images["ledger.png"] = _png(figure)
    if report["rpo"]:
        figure, axes = _figure(
            window, "RPO: age of the newest backup when the next was taken", "hours"
        )
        axes.plot(
            [_when(p["time"]) for p in report["rpo"]],
            [p["seconds"] / 3600 for p in report["rpo"]],
            "o-",
        )
        images["rpo.png"] = _png(figure)
    drills = [d for d in report["drills"]["series"] if isinstance(d["rto_seconds"], int | float)]
    if drills:
        figure, axes = _figure(window, "Restore drills: RTO", "seconds")
        for outcome, colour in (("success", "tab:green"), ("failure", "tab:red")):
            mine = [d for d in drills if d["outcome"] == outcome]
            axes.scatter(
                [_when(d["time"]) for d in mine],
                [d["rto_seconds"] for d in mine],
                color=colour,
                label=outcome,
            )
        axes.legend(loc="upper left")
        images["drills.png"] = _png(figure)
    return images


def page(report: Report, images: dict[str, bytes]) -> str:
    """One self-contained HTML page: the tables and every chart embedded."""
    esc = html.escape

    def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    warnings = "".join(f'<p class="warn">⚠️ {esc(w)}</p>' for w in report["warnings"])
    figures = "".join(
        f'<img alt="{esc(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    if is_empty(report):
        body = f"<p>{EMPTY}</p>"
    else:
        body = (
            (warnings or "<p>No warnings.</p>")
            + table(("metric", "value"), summary_rows(report))
            + table(OPERATION_HEADERS, operation_rows(report))
            + figures
        )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{esc(title(report))}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        ".warn{color:#a00;font-weight:bold}img{display:block;margin:1em 0;max-width:100%}"
        f"</style></head><body><h1>{esc(title(report))}</h1><p>{esc(period(report))}</p>"
        f"{body}</body></html>"
    )


def write_files(report: Report, reports_dir: Path) -> list[Path]:
    """The charts and the HTML page in ``<reports_dir>/health``; returns their paths (the
    page last) and lists them in the report's ``charts``. Charts of an earlier report that this
    one has no data for are removed, so the directory never mixes two reports."""
    directory = ensure_dir(health_dir(reports_dir))
    images = charts(report)
    written = []
    for name, data in images.items():
        write_atomic(directory / name, data)
        written.append(directory / name)
    for stale in directory.glob("*.png"):
        if stale.name not in images:
            stale.unlink(missing_ok=True)
    write_atomic(directory / PAGE, page(report, images).encode())
    written.append(directory / PAGE)
    report["charts"] = [str(p) for p in written]
    return written
