"""The fault suite's figures: every test adds what it injected and what it observed, and the
session writes them to a report (JSON and Markdown) that docs/reliability.md quotes.

DAGVAULT_STRESS=1 (``make stress``) runs the long form: at least 20 kill points per
operation and a one-minute load test. DAGVAULT_FAULT_REPORT names the report directory
(default: this pytest session's temp directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults._harness import Figures


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Figures]:
    collected = Figures()
    yield collected
    default = tmp_path_factory.getbasetemp() / "reliability"
    report = collected.write(Path(os.environ.get("DAGVAULT_FAULT_REPORT") or default))
    print(f"\nfault suite report: {report}")
