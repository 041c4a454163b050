"""Longest test files first: the order in which `make test` hands files to its two workers.

pytest-xdist with ``--dist loadfile --no-loadscope-reorder`` gives each worker whole files in
collection order (its default would order them by their number of tests, which put the few
but slow tests of deployments, Dask and SIGKILL last, one worker finishing minutes after the
other). Sorting the longest files to the front leaves the many short files to even out the
end. Files keep their own test order; files not listed keep theirs after the listed ones.
"""

from __future__ import annotations

import pytest

# Seconds of each long file run alone (one pytest process, no xdist, its Prefect server's
# start included) on the shared 2-core development machine at a load of 5 to 10, so about
# twice what an idle machine takes. Only the order matters: a file that takes more than half
# a minute belongs here (docs/development.md says how to measure one).
SECONDS: dict[str, float] = {
    "tests/integration/test_restore_baseline.py": 452,
    "tests/integration/test_cli.py": 427,
    "tests/integration/test_dead_runs.py": 392,
    "tests/integration/test_deployments.py": 290,
    "tests/integration/test_messages.py": 170,
    "tests/integration/test_service.py": 170,
    "tests/integration/test_operations.py": 222,
    "tests/integration/test_api.py": 155,
    "tests/integration/test_forgery.py": 131,
    "tests/integration/test_api_hardening.py": 128,
    "tests/integration/test_api_security.py": 108,
    "tests/integration/test_fleet.py": 105,
    "tests/integration/test_pitr.py": 88,
    "tests/integration/test_report.py": 98,
    "tests/unit/test_incremental_stateful.py": 85,
    "tests/integration/test_bandwidth.py": 78,
    "tests/unit/test_incremental.py": 76,
    "tests/integration/test_flows.py": 74,
    "tests/faults/test_sigkill.py": 74,
    "tests/integration/test_remote_cli.py": 72,
    "tests/faults/test_restore_faults.py": 66,
    "tests/integration/test_pre_restore.py": 62,
    "tests/integration/test_watch.py": 40,
    "tests/integration/test_remote.py": 38,
    "tests/integration/test_notebook.py": 35,
    "tests/integration/test_prefect_ui.py": 20,
    "tests/unit/test_export_json.py": 33,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # sort() is stable: a file's tests stay together and in their order.
    items.sort(key=lambda item: -SECONDS.get(item.nodeid.partition("::")[0], 0))
