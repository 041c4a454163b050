"""Prometheus metrics at /metrics.

The counters of operations, their errors and the failed quality gates, by operation,
come from the operations journal of BACKUP_DIR (see dagvault.journal):
every run counts, whoever started it (the CLI, a deployment, this server), and the counts
survive a restart of the server. The gauges are read at scrape time from the database
file and the backup catalog: among them ``dagvault_rpo_seconds`` (dagvault.rpo) and the last
restore drill's ``dagvault_restore_drill_seconds`` and ``dagvault_restore_drill_success``
(dagvault.drill). Only ``dag_operations_in_progress`` is this process's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dagvault import drill, journal, rpo
from dagvault.catalog import CatalogEntry, list_backups
from dagvault.storage.offsite.replicate import read_status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The *_created series of every counter only add noise to a scrape.
disable_created_metrics()


class _StorageCollector(Collector):
    def __init__(self, database: Path, backup_dir: Path) -> None:
        self.database = database
        self.backup_dir = backup_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "dag_storage_size_bytes", "Current database size (the file and its WAL)"
        )
        size.add_metric([], sum(_size(Path(f"{self.database}{s}")) for s in ("", "-wal")))
        yield size
        entries = list_backups(self.backup_dir)
        stored = GaugeMetricFamily(
            "dag_backup_storage_bytes", "Bytes of backup data files in BACKUP_DIR"
        )
        stored.add_metric([], sum(e.file_size for e in entries))
        yield stored
        last = GaugeMetricFamily(
            "dag_backup_last_success_timestamp_seconds",
            "Unix time of the newest verified backup, by type",
            labels=["type"],
        )
        duration = GaugeMetricFamily(
            "dag_backup_last_duration_seconds",
            "How long the newest verified backup took, by type",
            labels=["type"],
        )
        volume = GaugeMetricFamily(
            "dag_backup_last_size_bytes",
            "Size of the newest verified backup, by type",
            labels=["type"],
        )
        seen: set[str] = set()
        for entry in entries:  # newest first
            info = entry.info
            if info is None or not info.verified or info.backup_type in seen:
                continue
            seen.add(info.backup_type)
            kind = info.backup_type.lower()
            last.add_metric([kind], info.timestamp)
            duration.add_metric([kind], info.duration_seconds)
            volume.add_metric([kind], entry.file_size)
        yield from (last, duration, volume)
        yield from _replication(self.backup_dir)
        yield from _recovery(self.database, self.backup_dir, entries)


def _recovery(
    database: Path, backup_dir: Path, entries: list[CatalogEntry]
) -> Iterator[GaugeMetricFamily]:
    """The RPO now and the last restore drill (no series before the first backup / drill)."""
    measured = rpo.measure(database, backup_dir, entries=entries).seconds
    if measured is not None:
        yield GaugeMetricFamily(
            "dagvault_rpo_seconds",
            "Age of the newest recovery point while the ledger has changed since it (0: unchanged)",
            value=measured,
        )
    last = drill.last_drill(backup_dir)
    if last is None:
        return
    yield GaugeMetricFamily(
        "dagvault_restore_drill_success",
        "1 when the last restore drill restored and checked every point it tried, else 0",
        value=1 if last.get("success") else 0,
    )
    if isinstance(last.get("rto_seconds"), int | float):
        yield GaugeMetricFamily(
            "dagvault_restore_drill_seconds",
            "RTO measured by the last restore drill: seconds to a restored, checked copy of "
            "the newest recovery point",
            value=last["rto_seconds"],
        )


def _replication(backup_dir: Path) -> Iterator[GaugeMetricFamily]:
    """The last replication outcome per target (`dagvault replicate` writes it; no network
    here). A target that holds nothing yet has no lag series, only its missing count."""
    lag = GaugeMetricFamily(
        "dag_replication_lag_seconds",
        "Newest local backup minus newest backup at the target, at the last replication",
        labels=["target"],
    )
    missing = GaugeMetricFamily(
        "dag_replication_missing_backups",
        "Local backups the target lacked after the last replication",
        labels=["target"],
    )
    for target, status in sorted(read_status(backup_dir).items()):
        if isinstance(status.get("lag_seconds"), int | float):
            lag.add_metric([target], status["lag_seconds"])
        if isinstance(status.get("missing"), int):
            missing.add_metric([target], status["missing"])
    yield from (lag, missing)


class _JournalCollector(Collector):
    """The counters, from the journal of the backup directory."""

    def __init__(self, backup_dir: Path, operations: Iterable[str]) -> None:
        self.tally = journal.Tally(backup_dir)
        self.operations = list(operations)

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self.tally.counts()
        # Every known operation from the start (at 0), then any other the journal names.
        names = self.operations + sorted({op for op, _ in counts} - set(self.operations))
        families = (
            ("dag_storage_operations", "Storage operations run, by anyone", None),
            ("dag_storage_errors", "Storage operations that failed", journal.FAILURE),
            (
                "dag_quality_gate_failures",
                "Data-quality gates that failed",
                journal.QUALITY_GATE_FAILED,
            ),
        )
        for name, documentation, outcome in families:
            family = CounterMetricFamily(name, documentation, labels=["operation"])
            for op in names:
                if outcome is None:  # every operation, succeeded or failed
                    value = counts.get((op, journal.SUCCESS), 0) + counts.get(
                        (op, journal.FAILURE), 0
                    )
                else:
                    value = counts.get((op, outcome), 0)
                family.add_metric([op], value)
            yield family


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Metrics:
    def __init__(self, database: Path, backup_dir: Path, operations: Iterable[str]) -> None:
        # A registry of our own: Prefect registers collectors of its own in the global one.
        self.registry = CollectorRegistry()
        operations = list(operations)
        self.in_progress = Gauge(
            "dag_operations_in_progress",
            "Operations this server is running now",
            labelnames=["operation"],
            registry=self.registry,
        )
        for operation in operations:  # every series exists from the start, at 0
            self.in_progress.labels(operation)
        self.registry.register(_JournalCollector(backup_dir, operations))
        self.registry.register(_StorageCollector(database, backup_dir))

    def render(self) -> bytes:
        return generate_latest(self.registry)
