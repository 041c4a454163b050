"""Shared by the unit and the integration half of test_permissions.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def umask(value: int) -> Iterator[None]:
    """The CLI subprocesses inherit this umask (a desktop user's default is 022)."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)
