"""Bandwidth limits, in process: what `--bandwidth-limit` / DAGVAULT_BANDWIDTH_LIMIT accept,
the throttle's pacing on a simulated clock (no test waits), and both kinds of store pacing
a real upload with it (a file:// directory, fsspec's in-memory filesystem).

The integration half (tests/integration/test_bandwidth.py) measures the achieved rate of
real uploads to a file:// directory and to S3 (moto on loopback), and the command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.operations.common import parse_options
from dagvault.operations.replicate import ReplicateOptions
from dagvault.storage import open_store
from dagvault.storage.throttle import PART_BYTES, Throttle, parse_rate
from dagvault_cli.main import main

MiB = 2**20


class Clock:
    """Simulated time: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10M", 10 * MiB),
        ("512K", 512 * 1024),
        ("1.5G", 3 * 2**29),
        (" 10m ", 10 * MiB),
        ("10MB", 10 * MiB),
        ("10MiB/s", 10 * MiB),
        ("2048", 2048),
        (4096, 4096),
    ],
)
def test_rates_take_binary_suffixes(text: object, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "10X", "-5M", "0", "100", "1e9", True, "10 M B"])
def test_a_bad_rate_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="bytes per second"):
        parse_rate(text)


def test_the_setting_the_option_and_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_settings(environ={"DAGVAULT_BANDWIDTH_LIMIT": "512K"}).bandwidth_limit == 512 * 1024
    config = tmp_path / "c.json"
    config.write_text('{"backup": {"bandwidth_limit": "10M"}}')
    assert load_settings(config_file=config, environ={}).bandwidth_limit == 10 * MiB
    assert load_settings(environ={}).bandwidth_limit is None  # no limit by default
    with pytest.raises(ConfigError, match="DAGVAULT_BANDWIDTH_LIMIT"):
        load_settings(environ={"DAGVAULT_BANDWIDTH_LIMIT": "10X"})
    assert parse_options(ReplicateOptions, bandwidth_limit="2M").bandwidth_limit == 2 * MiB
    with pytest.raises(ConfigError, match="bandwidth_limit"):
        parse_options(ReplicateOptions, bandwidth_limit="lots")
    # Refused before anything runs (no flow, no Prefect server): exit 2, Error and Try.
    target = (tmp_path / "copy").as_uri()
    assert main(["replicate", "--to", target, "--bandwidth-limit", "10X"]) == 2
    err = capsys.readouterr().err
    assert "Error: Invalid bandwidth_limit" in err and "Try:" in err and "Traceback" not in err


def test_the_throttle_paces_each_upload_and_banks_no_idle_time() -> None:
    clock = Clock()
    throttle = Throttle(MiB, clock=clock, sleep=clock.sleep)
    throttle.begin()
    start = clock.now
    for chunk in range(16):
        throttle.sent(MiB // 8)  # 2 MiB in chunks
        if chunk == 3:
            clock.now += 0.4  # an object store sending a part: part of the schedule
    assert clock.now - start == pytest.approx(2.0)
    clock.now += 60  # a minute of other work (listing, reading back, encrypting)
    throttle.begin()
    resumed = clock.now
    throttle.sent(MiB)
    assert clock.now - resumed == pytest.approx(1.0)  # no burst from the idle minute
    assert Throttle(MiB).part_bytes == PART_BYTES and Throttle(8 * MiB).part_bytes == 8 * MiB


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_both_stores_pace_an_upload_and_store_it_whole(kind: str, tmp_path: Path) -> None:
    source = tmp_path / "backup.db"
    data = os.urandom(3 * MiB + 12345)
    source.write_bytes(data)
    target = (tmp_path / "target").as_uri() if kind == "file" else f"memory://{tmp_path.name}/t"
    store = open_store(target)
    clock = Clock()
    start = clock.now
    store.upload(source, "backup.db", throttle=Throttle(MiB, clock=clock, sleep=clock.sleep))
    assert store.read("backup.db") == data
    # The simulated time covers every byte at 1 MiB/s.
    assert clock.now - start == pytest.approx(len(data) / MiB)
    if kind == "file":
        assert os.listdir(tmp_path / "target") == ["backup.db"]  # no temp file left
