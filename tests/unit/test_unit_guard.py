"""tests/unit/conftest.py keeps unit tests in this process: what it refuses. That the core's
own helper processes still run is test_incremental.py's
test_the_helper_process_hashes_half_and_its_failure_is_covered."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

MOVE = "move this test to tests/integration"


@pytest.mark.parametrize("fixture", ["prefect_api_url", "cli", "s3_endpoint", "s3_target"])
def test_a_server_fixture_is_refused(request: pytest.FixtureRequest, fixture: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=MOVE):
        request.getfixturevalue(fixture)


def test_a_child_process_of_the_tests_own_is_refused() -> None:
    with pytest.raises(AssertionError, match=MOVE):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_listening_socket_is_refused() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        with pytest.raises(AssertionError, match=MOVE):
            server.listen()
