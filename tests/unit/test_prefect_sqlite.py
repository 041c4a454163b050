"""The Prefect servers dagvault starts (the node service's, a command's temporary one)
begin their SQLite transactions IMMEDIATE (flows/_prefect_sqlite.py), checked on Prefect's
own database configuration and a real SQLite file: the write lock is held from BEGIN, so a
second writer waits its turn instead of failing the first one's write with "database is
locked"."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy import text

from flows._prefect_sqlite import begin_sqlite_writes_immediately


def _holds_the_write_lock_after_a_read(database: Path) -> bool:
    async def scenario() -> bool:
        config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{database}")
        engine = await config.engine()
        try:
            session = await config.session(engine)
            async with session, config.begin_transaction(session):
                await session.execute(text("SELECT count(*) FROM t"))  # a read only
                with closing(sqlite3.connect(database, timeout=0)) as other:
                    try:
                        other.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError:
                        return True
                    other.rollback()
                    return False
        finally:
            await engine.dispose()
        raise AssertionError("unreachable")

    return asyncio.run(scenario())


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "prefect.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v)")
    return path


def test_prefect_begins_deferred_and_the_service_immediate(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not _holds_the_write_lock_after_a_read(database)  # Prefect's own: DEFERRED
    monkeypatch.setattr(
        AioSqliteConfiguration, "begin_transaction", AioSqliteConfiguration.begin_transaction
    )  # (restored after the test)
    begin_sqlite_writes_immediately()
    assert _holds_the_write_lock_after_a_read(database)
