"""``BackupInfo.metadata`` as the node's docs type it: ``HashMap<String, String>``.

A client written from those docs deserialises a ``.meta`` (or a list entry, or an
API answer) into its own ``BackupInfo``, and fails at the first number, boolean or object
in ``metadata``. So since sidecar format 3 every metadata value is a string: numbers in
decimal (``"4096"``, ``"0.125"``), booleans as ``"true"``/``"false"``; structured data
has fields of its own next to ``metadata`` (``row_counts``, ``warnings``, ``encryption``).

Sidecars of formats 1 and 2 held typed values in ``metadata``; ``upgrade`` turns such a
document into the format 3 layout when it is read (after its ``meta_checksum`` was checked
against the bytes as written), so every reader sees one layout.
"""

from __future__ import annotations

import json
from typing import Any

# Metadata keys dagvault reads back as numbers or flags, with how each is parsed. A
# format 3 sidecar whose value does not parse is invalid (its readers would crash).
INTEGER_KEYS = ("page_size", "page_count", "changed_pages")
REAL_KEYS = ("duration_seconds",)
FLAG_KEYS = ("read_in_place",)

# Structured values that lived inside ``metadata`` before format 3.
_MOVED = ("row_counts", "warnings", "encryption")


def as_text(value: Any) -> str:
    """One metadata value as the string stored: what a typed value from an older sidecar
    (or a caller) becomes; objects and lists as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def as_strings(metadata: dict[str, Any]) -> dict[str, str]:
    """``metadata`` with every value a string; None (no value) leaves the key out."""
    return {key: as_text(value) for key, value in metadata.items() if value is not None}


def flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"{text!r} is not 'true' or 'false'")
    return text == "true"


def problems_in(metadata: dict[str, Any]) -> list[str]:
    """Why ``metadata`` is not a map of strings whose numbers and flags parse."""
    problems = [
        f"metadata.{k} is not a string" for k, v in metadata.items() if not isinstance(v, str)
    ]
    parsers = [(INTEGER_KEYS, int), (REAL_KEYS, float), (FLAG_KEYS, flag)]
    for keys, parse in parsers:
        for key in keys:
            if isinstance(metadata.get(key), str):
                try:
                    parse(metadata[key])  # type: ignore[operator]
                except ValueError:
                    problems.append(f"metadata.{key} is {metadata[key]!r}, not a {parse.__name__}")
    return problems


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    """A format 1 or 2 sidecar document in the format 3 layout (same facts, new places)."""
    metadata = dict(document["metadata"])
    moved = {key: metadata.pop(key) for key in _MOVED if key in metadata}
    return {**document, **moved, "metadata": as_strings(metadata)}
