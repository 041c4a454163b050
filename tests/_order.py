"""Longest test files first: the order in which `make test` hands files to its two workers.

pytest-xdist with ``--dist loadfile --no-loadscope-reorder`` gives each worker whole files in
collection order (its default would order them by their number of tests, which put the few
but slow tests of deployments, Dask and SIGKILL last, one worker finishing minutes after the
other). Sorting the longest files to the front leaves the many short files to even out the
end. Files keep their own test order; files not listed keep theirs after the listed ones.
"""

from __future__ import annotations

import pytest

# Seconds of each long file in one `make test` (two workers, per-file sums of --durations=0; the
# first file of a worker includes its Prefect server's start) on the shared 2-core development
# machine at a load of 2 to 4, so close to an idle machine's. Only the order matters: a file
# that takes more than about 12 s belongs here (docs/development.md says how to measure one).
SECONDS: dict[str, float] = {
    "tests/integration/test_deployments.py": 258,
    "tests/integration/test_cli.py": 188,
    "tests/integration/test_restore_baseline.py": 169,
    "tests/integration/test_watch.py": 107,
    "tests/integration/test_dead_runs.py": 94,
    "tests/integration/test_service.py": 71,
    "tests/integration/test_api.py": 69,
    "tests/integration/test_messages.py": 47,
    "tests/integration/test_operations.py": 43,
    "tests/integration/test_forgery.py": 41,
    "tests/integration/test_api_hardening.py": 37,
    "tests/integration/test_description_types.py": 37,
    "tests/integration/test_fleet.py": 29,
    "tests/integration/test_remote_cli.py": 29,
    "tests/faults/test_restore_faults.py": 27,
    "tests/faults/test_sigkill.py": 26,
    "tests/integration/test_flows.py": 24,
    "tests/integration/test_api_security.py": 23,
    "tests/unit/test_incremental.py": 22,
    "tests/integration/test_sidecar_age.py": 20,
    "tests/integration/test_authenticated_reads.py": 19,
    "tests/integration/test_export.py": 18,
    "tests/integration/test_pre_restore.py": 17,
    "tests/integration/test_journal.py": 16,
    "tests/integration/test_export_json.py": 16,
    "tests/integration/test_bandwidth.py": 15,
    "tests/integration/test_quality.py": 15,
    "tests/integration/test_symlink_race.py": 14,
    "tests/integration/test_remote.py": 14,
    "tests/integration/test_incremental.py": 13,
    "tests/integration/test_pitr.py": 13,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # sort() is stable: a file's tests stay together and in their order.
    items.sort(key=lambda item: -SECONDS.get(item.nodeid.partition("::")[0], 0))
