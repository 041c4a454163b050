"""One backup, restore or prune of a database at a time across every Prefect run.

The core's flock covers one host and makes the loser fail (its task retries, then gives
up). Deployments that fire together, or workers on several hosts sharing a backup
volume, should queue instead: global concurrency limits on the Prefect server, one per
resource, created on first use (an operator may later lower or deactivate them):

* ``dagvault-db-<stem>-<hash>``, 1 slot: backup, restore and SQL import of that database;
* ``dagvault-dir-<name>-<hash>``, DIR_SLOTS slots: backup, restore and verify take one
  (they add or read backups), prune and cleanup take them all (they delete backups).

Slots are held with a short, renewed lease, and a dead run's slots come back at once
(``flows._slots``).

The database is always acquired before the directory, as the core's locks are, so two
runs never wait for each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dagvault.errors import OperationInProgress
from dagvault.storage import canonical, parent_of
from flows._slots import ensure_limit, hold
from tasks._runtime import artifact_key

# Runs that may add to or read one backup directory at once (prune waits for all of them).
DIR_SLOTS = 100
# A run still waiting after this long fails, and so notifies, rather than piling up
# behind a stuck one. Default: 4 hours (a multi-GB restore plus its checks fits).
WAIT_SECONDS = 4 * 3600


def limit_name(kind: str, place: Path | str) -> str:
    """A readable, stable limit name per resource (the hash tells same-named ones apart);
    a storage target URL (s3://…) names itself."""
    where = canonical(place)
    digest = hashlib.sha256(str(where).encode()).hexdigest()[:12]
    return artifact_key("dagvault", kind, Path(str(where).rstrip("/")).stem or "root", digest)


@contextmanager
def _occupy(name: str, slots: int, occupy: int) -> Iterator[None]:
    ensure_limit(name, slots)
    too_long = OperationInProgress(
        f"Waited {WAIT_SECONDS // 3600} h for the Prefect concurrency limit {name}; "
        "another dagvault run still holds it",
        f"Find that run in the Prefect UI (Concurrency page, limit {name}) or with "
        f"`prefect global-concurrency-limit inspect {name}`; run this one again after it.",
    )
    with hold(name, occupy, WAIT_SECONDS, too_long):
        yield


def directory_of(backup: str) -> Path | str:
    """The backup directory (or storage target) holding ``backup``."""
    return parent_of(backup)


@contextmanager
def one_at_a_time(
    *, database: Path | None = None, backup_dir: Path | str | None = None, removes: bool = False
) -> Iterator[None]:
    """Hold the database's limit (if given), then the backup directory's: one slot, or
    all of them when the run ``removes`` backups."""
    with ExitStack() as held:
        if database is not None:
            held.enter_context(_occupy(limit_name("db", database), 1, 1))
        if backup_dir is not None:
            occupy = DIR_SLOTS if removes else 1
            held.enter_context(_occupy(limit_name("dir", backup_dir), DIR_SLOTS, occupy))
        yield
