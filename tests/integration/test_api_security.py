"""The API's safety on a node: the bind policy, the bearer token, path confinement,
request validation, errors without internals, and a schemathesis run against the
published OpenAPI schema. One real server listening on all addresses with a token.

Its live database does not exist: operations that would reach it fail fast (404), so the
time-bounded schemathesis run reaches every endpoint's validation, confinement and error
answers instead of spending its budget on a few real backups. Successful operations, and
their responses checked against the same response models, are test_api.py's part."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dagvault.sample import create_sample_ledger
from tests._api import TOKEN, Server, api_server

MUTATING = [
    ("/backup", {"backup_path": "./backups/x"}),
    ("/backup/restore", {"backup_path": "./backups/x.db"}),
    ("/backup/export", {"format": "sql"}),
    ("/backup/import", {"sql_path": "./exports/x.sql"}),
    ("/backup/verify", {"all": True}),
    ("/backup/cleanup", {"dry_run": True}),
]


@pytest.fixture(scope="module")
def server(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("api-secure")
    (workdir / "backups").mkdir()
    (workdir / "exports").mkdir()
    with api_server(workdir, prefect_api_url, host="0.0.0.0", token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(TOKEN) as http:
        yield http


@pytest.fixture(scope="module")
def outside(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside BACKUP_DIR and EXPORT_DIR, reachable through symlinks in both."""
    target = tmp_path_factory.mktemp("outside")
    create_sample_ledger(target / "secret.db", 20, seed=3, nodes=4)
    (target / "dump.sql").write_text("CREATE TABLE t(x);\n")
    for area in ("backups", "exports"):
        (server.workdir / area / "escape").symlink_to(target)
        (server.workdir / area / "linked.db").symlink_to(target / "secret.db")
    return target


def _dagvault(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagvault_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("host", "token", "message"),
    [
        ("0.0.0.0", None, "Refusing to listen on 0.0.0.0 without DAGVAULT_API_TOKEN"),
        ("node.example", None, "Refusing to listen on node.example"),
        ("127.0.0.1", "short", "The API token is too short"),
    ],
)
def test_refuses_an_unsafe_bind(host: str, token: str | None, message: str, tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "DAGVAULT_API_TOKEN"}
    if token:
        env["DAGVAULT_API_TOKEN"] = token
    done = _dagvault("api", "--host", host, "--port", "1", env=env)
    assert done.returncode == 2
    assert message in done.stderr and "Try:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("path", "body"), MUTATING)
def test_mutating_endpoints_need_the_token(server: Server, path: str, body: dict) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        response = httpx.post(server.url + path, json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["success"] is False
    assert not list((server.workdir / "backups").glob("x*"))


def test_reads_need_the_token_beyond_loopback_but_health_does_not(server: Server) -> None:
    for path in ("/backup/list", "/backup/schedule", "/metrics"):
        assert httpx.get(server.url + path).status_code == 401
        assert (
            httpx.get(server.url + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code
            == 200
        )
    assert httpx.get(server.url + "/health").status_code == 200


def test_the_token_is_never_logged_and_refusals_are_audited(server: Server) -> None:
    httpx.post(
        server.url + "/backup/cleanup",
        json={},
        headers={"Authorization": "Bearer nope-nope-nope-nope"},
    )
    lines = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    denied = [e for e in lines if e["result"] == "denied"]
    assert denied and denied[-1]["action"] == "cleanup" and denied[-1]["who"] == "client:127.0.0.1"
    assert denied[-1]["status"] == 401
    with server.client(TOKEN) as http:
        assert http.post("/backup/cleanup", json={"dry_run": True}).status_code == 200
    lines = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    fingerprint = "token:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    assert lines[-1]["who"] == fingerprint and lines[-1]["result"] == "success"
    for log in (server.audit_log, server.log):
        assert TOKEN not in log.read_text()


def _cases(outside: Path) -> list[tuple[str, dict, str]]:
    """(endpoint, body, the field the error must name): every path field of every endpoint."""
    cases = []
    for bad in (
        str(outside / "x"),
        "../outside/x",
        "./backups/../../x",
        "backups/escape/x",
        "a\0b",
        "backups/" + "n" * 256,
    ):
        cases += [
            ("/backup", {"backup_path": bad}, "backup_path"),
            ("/backup/verify", {"backup_path": bad}, "backup_path"),
            ("/backup/export", {"backup_path": bad}, "backup_path"),
        ]
    for bad in (str(outside / "secret.db"), "backups/linked.db", "backups/escape/secret.db"):
        cases.append(("/backup/restore", {"backup_path": bad}, "backup_path"))
    for bad in (str(outside / "out"), "./exports/../x", "exports/escape/out", "/etc/out"):
        cases.append(("/backup/export", {"export_path": bad, "format": "csv"}, "export_path"))
    for bad in (str(outside / "dump.sql"), "exports/escape/dump.sql", "exports/linked.db"):
        cases.append(("/backup/import", {"sql_path": bad}, "sql_path"))
    return cases


def test_paths_outside_the_configured_directories_are_refused(
    server: Server, client: httpx.Client, outside: Path
) -> None:
    before = sorted(p.name for p in outside.iterdir())
    for endpoint, body, field in _cases(outside):
        response = client.post(endpoint, json=body)
        error = response.json()["error"]
        assert response.status_code == 400, (endpoint, body, response.text)
        assert error.startswith(f"{field}: "), error
        assert str(server.workdir) not in response.text
    for bad in ("/etc", "../", "backups/escape"):
        response = client.get("/backup/list", params={"backup_dir": bad})
        assert response.status_code == 400 and response.json()["error"].startswith("backup_dir: ")
    listing = client.get("/backup/list")  # the escaping symlink is listed by its own name
    assert listing.status_code == 200 and str(outside) not in listing.text
    assert "backups/linked.db" in [e["backup_path"] for e in listing.json()["data"]]
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing created outside
    assert not (server.workdir / "blockchain.db").exists()  # no restore ran


def test_absolute_paths_inside_are_accepted_and_shown_relative(
    server: Server, client: httpx.Client
) -> None:
    missing = client.post(
        "/backup/restore", json={"backup_path": str(server.workdir / "backups" / "none.db")}
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "Backup backups/none.db does not exist"


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("/backup", {"backup_type": "weekly"}, "backup_type"),
        ("/backup", {"backup_path": 7}, "backup_path"),
        ("/backup", {"backup_pth": "./backups/x"}, "backup_pth"),
        ("/backup", {"description": "x" * 1001}, "description"),
        ("/backup", {"backup_path": "./backups/bad name!"}, "backup_path"),
        ("/backup/restore", {}, "backup_path"),
        ("/backup/export", {"format": "xlsx"}, "format"),
        ("/backup/export", {"tables": []}, "tables"),
        ("/backup/cleanup", {"keep": -1}, "keep"),
        ("/backup/cleanup", {"keep": "all"}, "keep"),
        ("/backup/verify", {}, "body"),
        ("/backup/verify", {"all": True, "backup_path": "x.db"}, "body"),
    ],
)
def test_invalid_requests_name_the_field(
    client: httpx.Client, endpoint: str, body: dict, field: str
) -> None:
    response = client.post(endpoint, json=body)
    assert response.status_code == 400, response.text
    assert f"{field}: " in response.json()["error"]


def test_malformed_bodies_and_queries_are_client_errors(client: httpx.Client) -> None:
    for content, kind in (
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"{}", "text/plain"),
    ):
        response = client.post("/backup/restore", content=content, headers={"Content-Type": kind})
        assert response.status_code == 400, response.text
        assert "Traceback" not in response.text
    assert client.get("/backup/list", params={"limit": "0"}).status_code == 400
    assert client.get("/backup/schedule", params={"interval_hours": "x"}).status_code == 400
    assert client.delete("/backup").status_code == 405
    assert client.get("/nowhere").json()["success"] is False


def test_schemathesis_finds_no_server_error_or_schema_violation(server: Server) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,negative_data_rejection,unsupported_method,ignored_auth",
            "--max-examples",
            "25",
            "--max-time",
            "15",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "60",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=server.workdir,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in server.log.read_text()
