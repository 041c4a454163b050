"""Progress of long operations, reported to whoever listens (the CLI's progress bar).

A module-level listener keeps progress out of every function signature and out of
Prefect flow parameters, which must stay serialisable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Listener = Callable[[str, int, int], None]  # (stage, done, total)

_listener: Listener | None = None


def report(stage: str, done: int, total: int) -> None:
    if _listener is not None:
        _listener(stage, done, total)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous
