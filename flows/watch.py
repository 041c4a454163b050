"""The ledger watcher's Prefect side (``dagvault watch``, part of ``dagvault up``).

With a Prefect server (PREFECT_API_URL), each event of dagvault/watch.py goes to it as a
Prefect event, where the incremental-backup deployment's triggers (deployments/prefect.yaml)
start the backups. Without one, or with ``take_backups``, the watcher takes the incremental
backups itself through the launcher, by the same rule (``BackupTrigger``); each is a flow run
of the process's temporary server, as a `dagvault backup` is. A backup that fails is logged
(❌) and the watcher goes on: the next change tries again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from dagvault.config import Settings
from dagvault.errors import DagvaultError
from dagvault.operations import BackupOptions
from dagvault.watch import (
    SIGNIFICANT,
    BackupTrigger,
    LedgerEvent,
    LedgerProbe,
    Watcher,
    WatchRules,
    trigger_window,
    watch,
)
from flows.launcher import require_reachable_api, run_operation

log = logging.getLogger("dagvault")


def watcher_for(settings: Settings) -> Watcher:
    probe = LedgerProbe(
        settings.database_path, settings.transactions_table, settings.watch_significant_tables
    )
    return Watcher(
        probe,
        WatchRules(
            interval_seconds=settings.watch_interval_seconds,
            significant_transactions=settings.watch_significant_transactions,
            significant_tables=settings.watch_significant_tables,
        ),
    )


def send_to_prefect(event: LedgerEvent) -> None:
    from prefect.events import emit_event

    emit_event(event=event.name, resource=event.resource, payload=event.payload)


def _backup_taker(
    settings: Settings, config_file: str | None, quality: bool, stop: threading.Event
) -> Callable[[LedgerEvent], None]:
    from prefect.exceptions import TerminationSignal

    trigger = BackupTrigger(trigger_window(settings.rpo_target_seconds))

    def take(event: LedgerEvent) -> None:
        if not trigger.fires(event, time.monotonic()):
            return
        why = "; ".join(event.payload["reasons"]) if event.name == SIGNIFICANT else "changed"
        options = BackupOptions(
            backup_type="Incremental", description=f"dagvault watch: {why}", quality=quality
        )
        # A failed run logged ❌ Backup creation failed and why; the next change tries again.
        with contextlib.suppress(DagvaultError):
            try:
                run_operation(
                    "backup",
                    options,
                    settings=settings,
                    config_file=config_file,
                    defer_when_busy=True,
                )
            except TerminationSignal:
                # SIGTERM during a flow run meets Prefect's handler, not ours: the run is
                # marked crashed, its temporary files are gone; stop as asked.
                stop.set()
                log.warning("⚠️  Stopped during a backup; it was not completed")

    return take


def run_watch(
    settings: Settings,
    *,
    take_backups: bool,
    quality: bool,
    config_file: str | None,
    stop: threading.Event,
) -> None:
    """Watch ``settings.database_path`` until ``stop`` is set (SIGTERM, Ctrl-C)."""
    watcher = watcher_for(settings)  # a missing ledger or table fails here, before Prefect
    sending = bool(os.environ.get("PREFECT_API_URL"))
    if sending:
        require_reachable_api()
    handlers: list[Callable[[LedgerEvent], None]] = [send_to_prefect] if sending else []
    outcomes = ["events to Prefect"] if sending else []
    if take_backups or not sending:
        handlers.append(_backup_taker(settings, config_file, quality, stop))
        outcomes.append(f"incremental backups here (RPO target {settings.rpo_target_seconds} s)")
    log.info(
        "👀 Watching %s every %g s: %s",
        settings.database_path,
        settings.watch_interval_seconds,
        " and ".join(outcomes),
    )

    def on_event(event: LedgerEvent) -> None:
        if event.name == SIGNIFICANT:
            log.info("📈 Significant change: %s", "; ".join(event.payload["reasons"]))
        for handle in handlers:
            handle(event)

    try:
        # What was seen since the last event is reported as it stops, not lost with the process.
        watch(watcher, on_event, stop.wait, on_stop=send_to_prefect if sending else None)
    except Exception:
        # Ctrl-C reaches the temporary Prefect server too: the backup running then fails
        # on its way out, having left nothing half-written (its files are temp files).
        if not stop.is_set():
            raise
        log.warning("⚠️  Stopped during a backup; it was not completed")
    finally:
        if sending:
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=10)  # the events still queued reach the server
