"""File names handed to DuckDB's readers, read literally.

``read_csv('exports/ledger[1]/tx.csv')`` is a glob in DuckDB: it reads ``ledger1/tx.csv``
(or nothing), so a count would come from another file than the one written. A name holding
a glob character (``*``, ``?``, ``[``) is therefore handed over as ``/dev/fd/N`` of the file
opened here; other names are passed unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

_GLOB = re.compile(r"[*?\[]")


@contextlib.contextmanager
def duckdb_name(path: Path) -> Iterator[str]:
    """A name under which DuckDB reads exactly ``path`` while the block runs."""
    if not _GLOB.search(str(path)):
        yield str(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        yield f"/dev/fd/{fd}"
    finally:
        os.close(fd)
