"""Where ``POST /backup/export`` writes: a new export per request, never over an earlier one
and never inside one.

``export_path`` names a prefix, as ``backup_path`` does for ``POST /backup``: every request
writes ``<prefix>_<unix-seconds>`` (``_2``, ``_3``… within one second), a ``.sql`` dump or a
dataset directory, and answers with that path. A suffix naming the format
(``blockchain.sql``) is dropped from the prefix. An existing directory that is not an export
(EXPORT_DIR, a folder of exports) gets ``<database>_<unix-seconds>`` inside it. An earlier
dataset (a directory holding ``manifest.json``, or one still being written) is only ever a
prefix: later exports become its siblings, not its contents.

Requests running at once in this server never pick the same name (names in flight are
remembered until their export finished or failed).
"""

from __future__ import annotations

import glob
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagvault.backup import numbered_paths
from dagvault.errors import ConfigError

_lock = threading.Lock()
_in_flight: set[Path] = set()


def _being_written(local: Path) -> bool:
    """An export's hidden temp file or directory (``.NAME.<pid>.tmp``) exists beside it."""
    return any(local.parent.glob(f".{glob.escape(local.name)}.*.tmp"))


def _is_folder(local: Path) -> bool:
    """A directory to write new exports into, as opposed to an export dataset itself."""
    return local.is_dir() and not (local / "manifest.json").exists() and not _being_written(local)


def export_prefix(shown: Path, local: Path, fmt: str, source: str, *, root: bool) -> Path:
    """The prefix (in the configured spelling) for ``export_path`` ``shown`` (``local``:
    the same path as this process opens it; ``root``: it is EXPORT_DIR, which may not
    exist yet), exporting ``source`` (a database or backup)."""
    if root or _is_folder(local):
        return shown / (Path(source).name.split(".")[0] or "export")
    return shown.with_name(shown.name.removesuffix(f".{fmt}") or shown.name)


@contextmanager
def fresh_export(prefix: Path, fmt: str, base: Path) -> Iterator[Path]:
    """A free ``<prefix>_<unix-seconds>[_n]`` (``.sql`` for a dump), held for this request
    until the block ends; ``base`` is where relative paths resolve."""
    suffix = ".sql" if fmt == "sql" else ""
    literal = prefix.name.replace("{", "{{").replace("}", "}}")  # a template, for numbered_paths
    candidates = numbered_paths(prefix.parent, literal + "_{ts}{n}")(int(time.time()), suffix)
    with _lock:
        for candidate in candidates:
            local = base / candidate
            taken = local.exists() or local.is_symlink() or _being_written(local)
            if candidate not in _in_flight and not taken:
                _in_flight.add(candidate)
                break
        else:
            raise ConfigError(
                f"export_path: no free name for {prefix} within this second",
                "Send the request again in a second.",
            )
    try:
        yield candidate
    finally:
        with _lock:
            _in_flight.discard(candidate)
