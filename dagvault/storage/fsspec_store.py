"""Object storage through fsspec: ``s3://bucket/prefix`` (s3fs), ``gs://bucket/prefix``
(gcsfs) and any other protocol fsspec knows.

Credentials come from the backend's standard sources, never from dagvault's config:
for S3 the AWS environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for S3-compatible
servers), ``~/.aws`` or an instance role; for GCS ``GOOGLE_APPLICATION_CREDENTIALS`` or
the metadata server.

An object PUT to S3 or GCS becomes visible only when the upload completes (a multipart
upload only when it is completed), so ``upload`` is atomic per object; a failed upload
is retried here (on top of the backend's own retries) and finally removed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import fsspec

from dagvault.errors import BackupNotFound, ConfigError, StorageError
from dagvault.storage import StoredObject
from dagvault.storage.throttle import CHUNK_BYTES, Throttle

T = TypeVar("T")

# Waits before the 2nd and 3rd attempt of an operation. Default: 0.5 s, 2 s (a dropped
# connection or a throttled request usually clears within seconds; the Prefect task
# retries for longer outages).
RETRY_DELAYS = (0.5, 2.0)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Transport failures of the usual backends (a dropped connection, a timeout, a 5xx);
    each backend raises its own classes, so take those that are installed."""
    found: list[type[BaseException]] = [OSError, TimeoutError]
    try:
        import aiohttp

        found.append(aiohttp.ClientError)
    except ImportError:
        pass
    try:
        import botocore.exceptions

        found += [botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError]
    except ImportError:
        pass
    return tuple(found)


class FsspecStore:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        protocol, _, root = self.url.partition("://")
        if not root:
            raise ConfigError(f"{url}: the target URL names no bucket or path")
        try:
            # No instance or listing cache: another process (replicate, prune) changes
            # the target between two calls, and a stale listing would hide it.
            self.fs = fsspec.filesystem(
                protocol, skip_instance_cache=True, use_listings_cache=False
            )
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"{url}: storage protocol {protocol!r} is not available: {exc}",
                "Use s3://, gs:// or file:// (see docs/offsite.md).",
            ) from None
        self.root = root
        self._transient = _transient_errors()

    def _key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def location(self, name: str) -> str:
        return f"{self.url}/{name}"

    def _call(self, action: str, name: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` with retries, translating failures per the Store contract."""
        where = self.location(name) if name else self.url
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                return operation()
            except FileNotFoundError:
                if action in ("uploading to", "writing"):  # the bucket itself is missing
                    raise StorageError(
                        f"Cannot write {where}: the bucket does not exist",
                        "Create the bucket (dagvault never creates buckets), or fix the URL.",
                    ) from None
                raise BackupNotFound(
                    f"{where} does not exist",
                    f"List what the target holds with `dagvault list --backup-dir {self.url}`.",
                ) from None
            except PermissionError as exc:
                raise StorageError(
                    f"Permission denied while {action} {where}: {exc}",
                    "Check the credentials (for S3 the AWS_* environment variables) and "
                    "that they may read, write and delete under this prefix.",
                ) from exc
            except self._transient as exc:
                if attempt == len(RETRY_DELAYS):
                    err = StorageError(
                        f"Storage error while {action} {where} (after {attempt + 1} "
                        f"attempts): {type(exc).__name__}: {exc}",
                        "Check the network and the storage service; run the command again.",
                    )
                    err.retryable = True
                    raise err from exc
                time.sleep(RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")

    def list(self) -> dict[str, StoredObject]:
        def listing() -> list[dict[str, Any]]:
            try:
                return self.fs.ls(self.root, detail=True)
            except FileNotFoundError:
                return []

        found = {}
        for entry in self._call("listing", "", listing):
            if entry.get("type") != "file":
                continue
            name = entry["name"].rstrip("/").rpartition("/")[2]
            if name and not name.startswith("."):
                found[name] = StoredObject(name, int(entry["size"]))
        return found

    def upload(self, local: Path, name: str, *, throttle: Throttle | None = None) -> None:
        def put() -> None:
            if throttle is None:
                self.fs.put_file(str(local), self._key(name))
            else:
                self._paced_put(local, self._key(name), throttle)

        try:
            self._call("uploading to", name, put)
        except StorageError:
            self.delete_quietly(name)
            raise

    def _paced_put(self, local: Path, key: str, throttle: Throttle) -> None:
        """Upload through the backend's writable file, a chunk at a time at ``throttle``'s
        pace; it sends a part each ``part_bytes`` and makes the object visible at close().
        On failure the upload is discarded (S3: the multipart upload is aborted) and the
        file marked closed, so neither close() nor the garbage collector publishes a prefix."""
        throttle.begin()
        out = self.fs.open(key, "wb", block_size=throttle.part_bytes)
        try:
            with open(local, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    out.write(chunk)
                    throttle.sent(len(chunk))
            out.close()
        except BaseException:
            out.discard()
            # fsspec's buffered files (S3, GCS) have a settable flag; a plain stream has not.
            with contextlib.suppress(AttributeError):
                out.closed = True
            raise

    def write(self, name: str, data: bytes) -> None:
        self._call("writing", name, lambda: self.fs.pipe_file(self._key(name), data))

    def read(self, name: str) -> bytes:
        return self._call("reading", name, lambda: self.fs.cat_file(self._key(name)))

    def open(self, name: str) -> BinaryIO:
        return self._call("reading", name, lambda: self.fs.open(self._key(name), "rb"))

    def delete(self, name: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._key(name))

        self._call("removing", name, remove)

    def delete_quietly(self, name: str) -> None:
        """Best effort after a failed upload: the backend may have kept nothing anyway."""
        with contextlib.suppress(StorageError):
            self.delete(name)
