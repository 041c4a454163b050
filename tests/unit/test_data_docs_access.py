"""/data-docs/ beyond loopback: the GX Data Docs hold sample ledger values, so a server whose
reads need the token serves them to token holders only (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from dagvault_api.data_docs import mount_data_docs

TOKEN = "t" * 32


def _client(directory: Path, token: str | None) -> TestClient:
    app = FastAPI()
    mount_data_docs(app, directory, token=token)
    return TestClient(app)


def test_a_server_whose_reads_need_the_token_shows_data_docs_to_token_holders_only(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.html").write_text("<p>tx 42 failed</p>")
    client = _client(tmp_path, TOKEN)
    refused = client.get("/data-docs/")
    assert refused.status_code == 401 and "tx 42" not in refused.text
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.get("/data-docs/", headers={"Authorization": "Bearer " + "x" * 32})
    assert wrong.status_code == 401
    shown = client.get("/data-docs/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert shown.status_code == 200 and "tx 42" in shown.text


def test_on_loopback_they_open_in_any_local_browser(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>ok</p>")
    assert _client(tmp_path, None).get("/data-docs/").text == "<p>ok</p>"
