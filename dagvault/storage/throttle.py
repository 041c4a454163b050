"""Bandwidth limits for uploads to storage targets (``--bandwidth-limit``,
DAGVAULT_BANDWIDTH_LIMIT).

A ``Throttle`` paces the bytes a run sends: after each chunk it sleeps until the bytes
sent so far, at the limit, would have taken at least the time elapsed since the first.
Idle time (listing a target, reading an upload back, encrypting) is never banked as
credit for a later burst, so the rate over any transfer stays at or under the limit.
One throttle serves a whole run (every backup, every target, one after another).

Object stores receive data in parts (``PART_BYTES`` or one second of the limit, the larger)
and a small object in one request: the wire sees a part at link speed, then a pause, and
the average over a transfer is the limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

# Bytes read from the local file and paced at a time: small against any useful limit, so
# the last chunk's overshoot is negligible. Default: 64 KiB.
CHUNK_BYTES = 64 * 1024
# The smallest multipart part S3 accepts (5 MiB); an object store's parts are at least this.
PART_BYTES = 5 * 1024 * 1024
# Binary multiples, as rsync's and rclone's bandwidth limits take them.
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?(?:/S)?")
# Below this a backup would take days; such a value is a typo (a missing suffix).
MIN_BYTES_PER_SECOND = 1024


def parse_rate(raw: object) -> int:
    """Bytes per second from ``raw``: an integer, or a number with a suffix K, M or G
    (KiB, MiB, GiB: ``512K``, ``10M``, ``1.5G``; ``MB``, ``MiB`` and ``/s`` are accepted)."""
    if isinstance(raw, bool):
        raise ValueError("expected bytes per second such as 10M or 512K")
    if isinstance(raw, int):
        value = float(raw)
    else:
        match = _RATE.fullmatch(str(raw).strip().upper())
        if not match:
            raise ValueError("expected bytes per second such as 10M or 512K")
        value = float(match[1]) * _UNITS[match[2]]
    if value < MIN_BYTES_PER_SECOND:
        raise ValueError(f"expected at least {MIN_BYTES_PER_SECOND} bytes per second (1K)")
    return int(value)


class Throttle:
    def __init__(
        self,
        bytes_per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bytes_per_second = bytes_per_second
        self._clock, self._sleep = clock, sleep
        self._paid_until: float | None = None  # when the bytes sent so far are "paid for"

    @property
    def part_bytes(self) -> int:
        """The part size an object store should use: one second of transfer, at least 5 MiB."""
        return max(PART_BYTES, self.bytes_per_second)

    def sent(self, count: int) -> None:
        """``count`` bytes just went out: wait until the limit allows the next ones."""
        now = self._clock()
        start = now if self._paid_until is None else max(self._paid_until, now)
        self._paid_until = start + count / self.bytes_per_second
        if self._paid_until > now:
            self._sleep(self._paid_until - now)


def throttle_for(bytes_per_second: int | None) -> Throttle | None:
    """A run's throttle, or None without a limit."""
    return Throttle(bytes_per_second) if bytes_per_second else None
