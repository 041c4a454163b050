"""Longest test files first: the order in which `make test` hands files to its two workers.

pytest-xdist with ``--dist loadfile --no-loadscope-reorder`` gives each worker whole files in
collection order (its default would order them by their number of tests, which put the few
but slow tests of deployments, Dask and SIGKILL last, one worker finishing minutes after the
other). Sorting the longest files to the front leaves the many short files to even out the
end. Files keep their own test order; files not listed keep theirs after the listed ones.
"""

from __future__ import annotations

import pytest

# Seconds of each long file when it runs alone (serially, one file per pytest process, its
# own Prefect server included) on the 2-core development machine; docs/development.md says
# how to measure. Only the order matters: add a file here when it takes minutes.
SECONDS = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # sort() is stable: a file's tests stay together and in their order.
    items.sort(key=lambda item: -SECONDS.get(item.nodeid.partition("::")[0], 0))
