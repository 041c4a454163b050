"""Unit tests run in this process: no Prefect server, no S3 server, no child process of the
test's own, no listening socket. A unit test that reaches for one fails here instead of
slowing `make test-unit` down; it belongs in tests/integration. The core's own helper
processes (page hashing, the pinned reader) are part of the code under test and may start."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any, NoReturn

import pytest

MOVE = "unit tests use no {what}: move this test to tests/integration"


@pytest.fixture(scope="session")
def prefect_api_url() -> NoReturn:
    pytest.fail(MOVE.format(what="Prefect server (prefect_api_url, cli)"))


@pytest.fixture(scope="session")
def s3_endpoint() -> NoReturn:
    pytest.fail(MOVE.format(what="S3 server (s3_endpoint, s3_target)"))


@pytest.fixture(autouse=True)
def no_child_process_or_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuses a child process that the core did not start itself (a CLI run, a Python child,
    Prefect's temporary server, which a flow called without a server starts) and a listening
    socket (an HTTP server)."""
    start_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def core_children_only(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        frame = sys._getframe(1)
        while frame.f_back and frame.f_globals.get("__name__") == "subprocess":
            frame = frame.f_back
        if frame.f_globals.get("__name__", "").partition(".")[0] != "dagvault":
            raise AssertionError(MOVE.format(what="child process"))
        start_child(self, *args, **kwargs)

    def refuse_listen(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(MOVE.format(what="listening socket"))

    monkeypatch.setattr(subprocess.Popen, "_execute_child", core_children_only)
    monkeypatch.setattr(socket.socket, "listen", refuse_listen)
