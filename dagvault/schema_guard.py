"""The schema guard of an unauthenticated restore: the backup's schema against the live one.

Without a key (dagvault.authtag) a backup's checksums prove only that it is intact, and
whoever can write the backup directory can forge one. A forged ledger is most dangerous
when it brings code: a trigger runs on the node's next write (``AFTER INSERT ON nodes
BEGIN DELETE FROM transactions; END``), a view can hide rows. So before an
unauthenticated restore, ``sqlite_schema`` of the backup is compared with the live
database's (type, name, table and whitespace-normalised SQL) and the restore is refused
when the backup

- adds a trigger or a view, or changes one (its SQL differs),
- drops a trigger or a table the live database has.

Added tables and indexes, changed table or index SQL (a migration's ALTER TABLE), and
dropped views and indexes pass: they run no code and a genuine older or newer backup
shows them after every migration. ``allow_schema_change`` (``--allow-schema-change``,
API ``allow_schema_change``) restores anyway and appends one line to the audit log
beside the database (``dagvault-audit.jsonl``), written before the live database is
touched: an override that cannot be logged is refused.

With no live schema to compare (a new or empty database, or one SQLite cannot read: a
disaster restore) the restore proceeds with a warning.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from pathlib import Path

from dagvault import auditlog
from dagvault.db import connection
from dagvault.errors import DagvaultError, VerificationError

AUDIT_LOG_NAME = "dagvault-audit.jsonl"
# Object types whose addition or change is refused, and those whose removal is.
_CODE = ("trigger", "view")
_KEPT = ("table", "trigger")

Schema = dict[tuple[str, str], tuple[str, str]]  # (type, name) -> (table, normalised SQL)


def read_schema(path: Path, what: str) -> Schema:
    with connection(path, mode="ro", what=what) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema "
            "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).fetchall()
    return {(kind, name): (table, " ".join((sql or "").split())) for kind, name, table, sql in rows}


def changes(backup: Schema, live: Schema) -> list[str]:
    """What the backup would do to the live schema that the guard refuses, one per object."""
    found = []
    for (kind, name), definition in sorted(backup.items()):
        if kind not in _CODE:
            continue
        if (kind, name) not in live:
            found.append(f"adds {kind} {name!r}: {definition[1]}")
        elif live[(kind, name)] != definition:
            found.append(f"changes {kind} {name!r} to: {definition[1]}")
    found += [
        f"drops {kind} {name!r}"
        for kind, name in sorted(live)
        if kind in _KEPT and (kind, name) not in backup
    ]
    return found


def audit_log_path(db_path: Path) -> Path:
    return db_path.absolute().parent / AUDIT_LOG_NAME


def check(source: Path, db_path: Path, backup: Path, allow: bool, warnings: list[str]) -> None:
    """Refuse (VerificationError) to restore the plain SQLite file ``source`` (the image of
    ``backup``) over ``db_path`` when it changes the schema as above, unless ``allow``:
    then audit-log the override and warn."""
    try:
        live = read_schema(db_path, "database") if db_path.exists() else {}
    except (DagvaultError, sqlite3.DatabaseError) as exc:
        warnings.append(f"the live database cannot be read ({exc}); its schema was not compared")
        return
    if not live:
        warnings.append("the live database is new or empty; there is no schema to compare")
        return
    found = changes(read_schema(source, "backup"), live)
    if not found:
        return
    if not allow:
        raise VerificationError(
            f"Backup {backup} is not authenticated and changes the database's schema: "
            + "; ".join(found),
            "The live database was not touched. If these changes are yours (or the backup "
            "predates a migration), restore with --allow-schema-change (API: "
            "allow_schema_change=true); the override is written to the audit log. A key "
            "makes backups authenticated (docs/security.md).",
            problems=found,
        )
    log = audit_log_path(db_path)
    auditlog.append(
        log,
        action="restore",
        event="schema_change_allowed",
        backup=str(backup.absolute()),
        database=str(db_path.absolute()),
        changes=found,
        user=getpass.getuser(),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    warnings.append(
        f"schema changes allowed (--allow-schema-change, recorded in {log}): " + "; ".join(found)
    )
