"""A fleet: the ledgers of many nodes, each backed up into its own directory.

Ledgers come from a list of paths and/or a glob (``/srv/nodes/*/blockchain.db``). Each
gets a label — its path relative to the ledgers' common directory, suffix dropped,
``/`` as ``-`` (``node-a-blockchain``) — and its backups go to ``<backup root>/<label>``,
so nodes whose files share a name never share a backup directory.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from dagvault.errors import ConfigError


@dataclass(frozen=True)
class Member:
    label: str
    database_path: Path
    backup_dir: Path


def fleet_members(
    ledgers: list[str] | None, pattern: str | None, backup_root: Path
) -> list[Member]:
    """The fleet, in a stable order. A listed ledger that does not exist stays in it: its
    backup fails on its own and the report names it (a node gone missing is news)."""
    paths = [Path(p).expanduser().absolute() for p in ledgers or []]
    if pattern:
        paths += [Path(p).absolute() for p in sorted(glob.glob(pattern, recursive=True))]
    unique = sorted({os.path.normpath(p): p for p in paths if not p.is_dir()}.values())
    if not unique:
        raise ConfigError(
            "The fleet is empty: "
            + (f"{pattern!r} matches no ledger file" if pattern else "no ledger was given"),
            "Name the ledgers (one per node) or a glob such as '/srv/nodes/*/blockchain.db'.",
        )
    common = Path(os.path.commonpath([p.parent for p in unique]))
    members = []
    for path in unique:
        label = "-".join(path.relative_to(common).with_suffix("").parts)
        members.append(Member(label, path, backup_root / label))
    return members
