"""Progress of long operations, reported to whoever listens (the CLI's progress bar, the
flow run's progress artifacts in the Prefect UI).

A module-level list of listeners keeps progress out of every function signature and out of
Prefect flow parameters, which must stay serialisable. Listeners nest: a command's bar and
its flow run's artifact both see every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Listener = Callable[[str, int, int], None]  # (stage, done, total)

_listeners: list[Listener] = []


def report(stage: str, done: int, total: int) -> None:
    for listener in list(_listeners):
        listener(stage, done, total)


def listened() -> bool:
    """Whether anyone listens (a progress bar on a terminal): else asking a remote run for
    its progress would be wasted."""
    return bool(_listeners)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
