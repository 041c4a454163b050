"""The API server resolves its settings once, at start, and every run it launches uses
exactly those: what a request's paths were checked against is what the run writes with."""

from __future__ import annotations

import json
from pathlib import Path

from _api import api_server
from _helpers import make_odd_ledger, write_odd_ledger_config


def test_a_run_uses_the_settings_the_server_checked_not_a_config_edited_since(
    prefect_api_url: str, tmp_path: Path
) -> None:
    make_odd_ledger(tmp_path / "node-ledger.db")
    config = write_odd_ledger_config(tmp_path)
    env = {"DAGVAULT_CONFIG": str(config), "DATABASE_PATH": "./node-ledger.db"}
    with api_server(tmp_path, prefect_api_url, extra_env=env) as server:
        # Edited while the server runs: other backup and ledger settings. The server's
        # settings (and the flow run's) stay those it started with.
        edited = json.loads(config.read_text())
        edited["ledger"] = {**edited["ledger"], "transactions_table": "no_such_table"}
        edited["backup"] = {"compression_enabled": True, "directory": "./elsewhere"}
        config.write_text(json.dumps(edited))
        with server.client() as http:
            response = http.post("/backup", json={"description": "after an edit"})
    body = response.json()
    assert response.status_code == 200, body
    info = body["data"]["result"]
    assert body["data"]["backup_path"].startswith("backups/")
    assert info["compression_enabled"] is False
    assert info["quality"]["passed"] is True  # the gate checked the start-time tables
    assert not (tmp_path / "elsewhere").exists()
    assert (tmp_path / info["backup_path"]).is_file()
