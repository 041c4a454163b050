"""Bandwidth limits for uploads to storage targets (``--bandwidth-limit``,
DAGVAULT_BANDWIDTH_LIMIT).

A ``Throttle`` paces each upload against its own schedule: after each chunk it sleeps
until the bytes sent so far in this upload, at the limit, would have taken at least the
time since the upload began. Time the upload itself spends (an object store sending a
part) counts towards the schedule, so the average over an upload is the limit, not less;
time between uploads (listing a target, reading an upload back, encrypting) is never
banked as credit for a burst, since each upload begins its schedule anew. One throttle
serves a whole run (every backup, every target, one after another).

Object stores receive data in parts (``PART_BYTES`` or one second of the limit, the larger)
and a small object in one request once it is complete: the wire sees a part at link speed,
then a pause, and the average over an upload is the limit (a small object's one request
comes after its schedule, so it lands a little under).
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
        self._began = clock()
        self._sent = 0

    @property
    def part_bytes(self) -> int:
        """The part size an object store should use: one second of transfer, at least 5 MiB."""
        return max(PART_BYTES, self.bytes_per_second)

    def begin(self) -> None:
        """A new upload starts (or a failed one starts again): its schedule starts now."""
        self._began, self._sent = self._clock(), 0

    def sent(self, count: int) -> None:
        """``count`` bytes of the current upload just went out: wait until the schedule
        allows the next ones."""
        self._sent += count
        wait = self._began + self._sent / self.bytes_per_second - self._clock()
        if wait > 0:
            self._sleep(wait)


def throttle_for(bytes_per_second: int | None) -> Throttle | None:
    """A run's throttle, or None without a limit."""
    return Throttle(bytes_per_second) if bytes_per_second else None
