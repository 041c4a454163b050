"""Quantities written for people: the CLI's output and the Prefect UI's artifacts."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """``1536`` → ``1.5 KiB``: binary units, one decimal (whole bytes below 1 KiB)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def count(n: int | None) -> str:
    """``5700`` → ``5,700``; unknown → empty."""
    return "" if n is None else f"{n:,}"
