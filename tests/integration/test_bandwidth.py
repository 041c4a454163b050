"""Bandwidth limits measured on real uploads: a backup of a few MB of an odd ledger copied
with a 2 MiB/s limit to a file:// directory and to S3 (moto's server on loopback), the
replicate flow with its ``bandwidth_limit``, and a throttled multipart upload whose
connection keeps being cut (nothing published, every multipart upload aborted).

Rates are asserted under the limit + 10% (the feature) and above half of it (loose
enough for a loaded machine). The unit half is tests/unit/test_bandwidth.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, make_odd_ledger
from _s3 import CuttingProxy

from dagvault.backup import create_backup
from dagvault.errors import StorageError
from dagvault.ledger import LedgerProfile
from dagvault.storage import open_store
from dagvault.storage.offsite.replicate import replicate
from dagvault.storage.throttle import Throttle

MiB = 2**20
LIMIT = 2 * MiB


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """One full backup of about 3 MB (20 KB blobs, 8 KiB pages)."""
    ledger = make_odd_ledger(tmp_path / "node-ledger.db", 150)
    directory = tmp_path / "backups"
    create_backup(ledger, directory, profile=LedgerProfile(**ODD_LEDGER_CONFIG["ledger"]))
    return directory


def _assert_rate(size: int, seconds: float) -> None:
    rate = size / seconds
    assert LIMIT * 0.5 < rate <= LIMIT * 1.1, f"{rate / MiB:.2f} MiB/s with a 2 MiB/s limit"


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_replication_stays_within_the_limit(
    kind: str, backups: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = (
        (tmp_path / "replica").as_uri() if kind == "file" else request.getfixturevalue("s3_target")
    )
    store = open_store(target)
    started = time.monotonic()
    report = replicate(backups, store, None, throttle=Throttle(LIMIT))
    # End to end: listing, checks and the read-back included.
    _assert_rate(report.bytes_copied, time.monotonic() - started)
    (name,) = report.copied
    assert report.bytes_copied > 2.5 * MiB and report.lag_seconds == 0
    assert store.read(name) == (backups / name).read_bytes()


@pytest.mark.usefixtures("prefect_api_url")
def test_the_replicate_flow_takes_the_limit(backups: Path, tmp_path: Path) -> None:
    """The flow (what `dagvault replicate --bandwidth-limit` and a deployment run) hands
    its ``bandwidth_limit`` down to the upload."""
    from flows.replicate import replicate_flow

    reports = replicate_flow(
        targets=[(tmp_path / "replica").as_uri()],
        backup_dir=str(backups),
        bandwidth_limit="2M",  # as a deployment's parameter may be given in the UI
    )
    (report,) = reports
    assert report["bytes_copied"] > 2.5 * MiB
    _assert_rate(report["bytes_copied"], report["duration_seconds"])


def test_a_throttled_upload_that_keeps_failing_publishes_nothing_and_aborts(
    s3_target: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.db"
    source.write_bytes(os.urandom(6 * MiB))  # two parts at 5 MiB/s (S3's smallest: 5 MiB)
    proxy = CuttingProxy(int(s3_endpoint.rpartition(":")[2]), cut_after=2 * MiB, cuts=1000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries: only ours count
    try:
        with pytest.raises(StorageError) as caught:
            open_store(s3_target).upload(source, "big.db", throttle=Throttle(5 * MiB))
    finally:
        proxy.close()
    assert caught.value.retryable and proxy.cuts_done >= 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    store = open_store(s3_target)
    assert store.list() == {}
    bucket = s3_target.removeprefix("s3://").partition("/")[0]
    # Each cut attempt's multipart upload was aborted, not left behind to be billed.
    assert store.fs.list_multipart_uploads(bucket) == []  # type: ignore[attr-defined]
