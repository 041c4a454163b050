"""The failure notification reaches the operator's channel: a real HTTP endpoint behind
Prefect's custom-webhook notification block."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from dagvault.errors import DatabaseNotFound
from flows.backup import backup_flow

pytestmark = pytest.mark.usefixtures("prefect_api_url")


@pytest.fixture
def channel() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_a_failed_run_notifies_the_configured_block(
    tmp_path: Path, channel: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = channel
    CustomWebhookNotificationBlock(
        name="ops", url=url, json_data={"text": "{{subject}}\n{{body}}"}
    ).save("dagvault-test-ops", overwrite=True)
    monkeypatch.setenv("DAGVAULT_NOTIFY_BLOCK", "custom-webhook/dagvault-test-ops")
    missing = tmp_path / "gone.db"

    with pytest.raises(DatabaseNotFound):
        backup_flow(database_path=str(missing), backup_dir=str(tmp_path / "b"), quality=False)

    (message,) = received
    assert message["text"].startswith("dagvault: dagvault-backup Failed")
    assert str(missing) in message["text"]


def test_no_block_configured_sends_nothing(
    tmp_path: Path, channel: tuple[str, list[dict[str, Any]]]
) -> None:
    _, received = channel
    with pytest.raises(DatabaseNotFound):
        backup_flow(database_path=str(tmp_path / "gone.db"), backup_dir=str(tmp_path / "b"))
    assert received == []
