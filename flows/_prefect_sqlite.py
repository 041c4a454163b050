"""Prefect's server with every write transaction on its SQLite database begun IMMEDIATE:
the node service's server (``dagvault_cli.service.prefect_server``) and a command's
temporary one (``flows._prefect_server``).

Prefect's server begins its SQLite transactions DEFERRED: one that reads, then writes
(taking a concurrency slot, proposing a state) fails at once with "database is locked"
when another connection committed in between, because SQLite cannot upgrade that read
snapshot and does not wait for it (busy_timeout does not apply). The server answers 503
and Prefect's client retries 2 s later. With the server's background writers (event
persister, task-run recorder, log batches) that hit 6 of 8 ad-hoc backups of a 1 GB ledger
in a row, each time inside a run the operator waits for (docs/performance.md). BEGIN
IMMEDIATE takes the write lock first: writers queue for milliseconds within the
connection's busy_timeout instead. SQLite admits one writer at a time either way, and
readers are not blocked (WAL). A PostgreSQL database is left as it is.

    python -m flows._prefect_sqlite <uvicorn options>    # the temporary server

The change holds in the process that makes it: one uvicorn worker with Prefect's services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def begin_sqlite_writes_immediately() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred = AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_transaction(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        # (with_for_update is how Prefect itself asks for IMMEDIATE on SQLite)
        async with deferred(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def main() -> None:
    """``python -m uvicorn`` (its options in sys.argv), with the change made first."""
    begin_sqlite_writes_immediately()
    from uvicorn.main import main as uvicorn_main

    uvicorn_main()


if __name__ == "__main__":
    main()
