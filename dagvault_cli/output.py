"""Printing results: JSON for scripts, aligned text for people, a progress bar on terminals."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from dagvault import progress
from dagvault.units import human_bytes  # noqa: F401  (the commands' import of it)
from flows import _run_lines

# Prefect's logging configuration takes overrides from the environment (before it loads).
PREFECT_CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"


def log_to_terminal(verbose: bool) -> None:
    """Prefect's console handler prints every flow and task run's INFO lines, which bury a
    command's results. Unless ``-v``, it shows warnings and errors only, and dagvault's own
    event lines (📦 ✅ 🧹) are printed plainly on stderr. The run history keeps every line."""
    _run_lines.show_run_lines(verbose)
    if verbose:
        return
    os.environ.setdefault(PREFECT_CONSOLE_LEVEL_ENV, "WARNING")
    events = logging.StreamHandler(sys.stderr)
    events.setFormatter(logging.Formatter("%(message)s"))
    # Warnings and errors are Prefect's console handler's to show, once it is configured
    # (a command that fails before its flow run starts has none: then they are ours).
    events.addFilter(
        lambda record: record.levelno < logging.WARNING or not logging.getLogger().handlers
    )
    core = logging.getLogger("dagvault")
    core.setLevel(logging.INFO)
    core.addHandler(events)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[None]:
    """A bar per stage (backup, restore, …) on stderr, only when it is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    bars: dict[str, Any] = {}
    with Progress(
        "{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as display:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = display.add_task(stage, total=total)
            display.update(bars[stage], completed=done, total=total)

        with progress.listening(update):
            yield


def rpo_text(health: dict[str, Any]) -> str:
    """The RPO of a health report (dagvault.health) in words: `health` and `status` print it."""
    seconds, newest = health.get("rpo_seconds"), health.get("newest_recovery_point")
    target = f"target {health.get('rpo_target_seconds')} s"
    if seconds is None:
        return f"unknown: no recovery point yet ({target})"
    if not health.get("changed_since_newest"):
        return f"0 s: the ledger is unchanged since the newest recovery point, {newest} ({target})"
    return (
        f"{seconds:.0f} s: the ledger changed since the newest recovery point, {newest} ({target})"
    )
