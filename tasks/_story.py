"""How a run reads in the Prefect UI: task run names, one log line per step's outcome, and
artifact cells written for people (MiB, 5,700, JSON, an empty cell for nothing)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from dagvault.units import count, human_bytes


def leaf(location: str | None) -> str:
    """The last part of a path or URL (``s3://b/p/ledger_1.db`` → ``ledger_1.db``), without
    a URL's credentials: task run names are shown to everyone who can read the UI."""
    if not location:
        return ""
    parts = urlsplit(str(location))
    path = parts.path if parts.scheme and parts.netloc else str(location)
    return path.rstrip("/").rpartition("/")[2] or (parts.hostname or "")


def step(message: str, *args: Any) -> None:
    """One line of the run's story in its Logs tab (shown on a terminal with ``-v`` only:
    the CLI prints its own summary)."""
    try:
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()
    except MissingContextError:  # a task's function called outside a run
        logger = logging.getLogger("dagvault.story")
    logger.info(message, *args)


def cell(value: Any, field: str = "") -> str:
    """An artifact table cell: sizes in binary units, counts with separators, mappings and
    lists as JSON, nothing as an empty cell (not "-", which the UI renders as a bullet).
    ``field`` names the value: one with "size" or "bytes" in it is a size."""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and ("size" in field or "bytes" in field):
        # The exact count beside the rounded one, where rounding hides it.
        return human_bytes(value) if value < 1024 else f"{human_bytes(value)} ({value:,} bytes)"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return f"{value:.3g} s" if field.endswith("seconds") else f"{value:g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, Mapping))
    return str(value)


def fields(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """A two-column (field, value) table of ``values``, each rendered by ``cell``."""
    return [{"field": name, "value": cell(value, name)} for name, value in values.items()]


def checks_line(checks: Mapping[str, str]) -> str:
    """``{"checksum": "ok", "integrity_check": "ok"}`` → ``checksum ok, integrity ok``."""
    return ", ".join(
        f"{name.removesuffix('_check').replace('_', ' ')} {outcome}"
        for name, outcome in checks.items()
    )
