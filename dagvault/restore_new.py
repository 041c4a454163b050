"""Restoring into a database that does not exist yet: the verified image becomes the file.

A restore into a live database copies the backup's image into it through SQLite's backup
API (``dagvault.restore``): other connections stay valid and a crash rolls it back. With no
database there (a disaster restore onto a new disk, a restore drill's scratch file, a copy
for an investigation) there is nothing to protect and no connection to keep: the image the
verification rebuilt and checked (``integrity_check``, row counts) beside the database is
synced and linked into place. That writes the ledger once instead of twice, and the
post-check's ``quick_check`` is not repeated: the file is the very one just checked (same
inode, same bytes).

link(2) publishes it only if the name is still free: a database created meanwhile by
another program (a node started early) is never replaced; the restore then copies into it
the usual way. A crash before the link leaves only a hidden temp file (removed by the next
restore); after it, a complete file.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from dagvault.fsio import publish

_SIDE_FILES = ("-wal", "-journal")


def absent(db_path: Path) -> bool:
    """No database at ``db_path``, nor a WAL or hot journal that SQLite would apply to
    whatever file appears under its name."""
    return not any(Path(f"{db_path}{suffix}").exists() for suffix in ("", *_SIDE_FILES))


class ImageSync:
    """Syncs an image to disk in a thread while its SQLite checks run (writeback is I/O,
    the checks CPU), so publishing it waits for little. The descriptor is opened and
    closed in the caller's thread, before and after the checks' own connection: closing
    another descriptor of a file drops its POSIX locks."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-sync")
        self._fd: int | None = None
        self._synced: Future[None] | None = None

    def start(self, image: Path) -> None:
        self._fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
        self._synced = self._pool.submit(os.fsync, self._fd)

    def wait(self) -> None:
        """Return once the image is on disk (an fsync error is raised here)."""
        if self._synced is None:
            raise RuntimeError("ImageSync.wait before start")
        self._synced.result()

    def __enter__(self) -> ImageSync:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)


def publish_image(image: Path, db_path: Path, synced: ImageSync | None) -> bool:
    """Make the checked ``image`` the database ``db_path``: synced (by ``synced``, else
    here), then linked under the name and the directory synced. False, and nothing
    changed, when ``db_path`` exists by now."""
    if synced is not None:
        synced.wait()
    else:
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if not absent(db_path):
        return False
    try:
        publish(image, db_path)
    except FileExistsError:
        return False
    return True
