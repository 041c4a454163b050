"""One table gives every failure its CLI exit code and its HTTP status."""

from __future__ import annotations

import inspect

import pytest

from dagvault import errors
from dagvault.errors import (
    EXIT_CODES,
    FAILURE_CODES,
    BackupsFailedQualityGate,
    DagvaultError,
    FleetBackupIncomplete,
    http_status,
)

FAILURES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, DagvaultError) and cls is not FleetBackupIncomplete
]


EXTRA: dict[str, object] = {"problems": ["m"], "reports": [], "document": {}, "read_as": ""}


def _instance(cls: type[DagvaultError]) -> DagvaultError:
    params = inspect.signature(cls).parameters
    if "field" in params:  # PathRejected
        return cls("backup_path", "m", "h")  # type: ignore[call-arg]
    return cls("m", "h", **{k: v for k, v in EXTRA.items() if k in params})  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", FAILURES, ids=lambda c: c.__name__)
def test_every_failure_has_a_documented_exit_code_and_an_http_status(
    cls: type[DagvaultError],
) -> None:
    exc = _instance(cls)
    assert exc.exit_code in EXIT_CODES and exc.exit_code != 0
    assert 400 <= http_status(exc) < 600
    ancestor = next(c for c in cls.__mro__ if c in FAILURE_CODES)
    assert (exc.exit_code, http_status(exc)) == FAILURE_CODES[ancestor]


def test_the_failure_types_of_the_shells_live_in_the_core() -> None:
    import dagvault_api.paths
    import flows.fleet
    import flows.replicate
    import flows.verify

    assert flows.replicate.ReplicationIncomplete is errors.ReplicationIncomplete
    assert dagvault_api.paths.PathRejected is errors.PathRejected

    assert flows.verify.BackupsFailedQualityGate is BackupsFailedQualityGate
    assert flows.fleet.FleetBackupIncomplete is FleetBackupIncomplete
    gate = BackupsFailedQualityGate("gate", "h", problems=["gate"], reports=[])
    assert (gate.exit_code, http_status(gate)) == (4, 422)


def test_a_fleet_failure_exits_with_the_code_of_its_first_failed_ledger() -> None:
    reports = [
        {"status": "ok"},
        {"status": "failed", "exit_code": 6},
        {"status": "failed", "exit_code": 3},
    ]
    assert FleetBackupIncomplete("m", "h", reports=reports).exit_code == 6


def test_the_api_documents_every_status_of_the_table() -> None:
    from dagvault_api.app import ERROR_RESPONSES

    assert {codes.http_status for codes in FAILURE_CODES.values()} <= set(ERROR_RESPONSES)
