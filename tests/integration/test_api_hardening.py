"""Issue #20 on a real `dagvault api` process: bodies are read only from authenticated
callers and only up to the cap, request names that layers could read differently are
refused before anything is written, the token comes from a private file, the audit log
names every client and cannot be flooded, and /docs needs no CDN.

Integration half; the tests that need no server or child process are in
tests/unit/test_api_hardening.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _helpers import make_odd_ledger, write_odd_ledger_config

from tests._api import TOKEN, Server, api_server

MiB = 1024 * 1024
CAP = 64 * 1024  # the test server's DAGVAULT_API_MAX_BODY_BYTES


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "api-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def server(
    prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory, token_file: Path
) -> Iterator[Server]:
    """A server with the odd ledger as its database, its token given as a file."""
    workdir = tmp_path_factory.mktemp("api-hardening")
    (workdir / "backups").mkdir()
    (workdir / "exports").mkdir()
    make_odd_ledger(workdir / "blockchain.db")
    env = {
        "DAGVAULT_API_TOKEN_FILE": str(token_file),
        "DAGVAULT_CONFIG": str(write_odd_ledger_config(workdir)),
        "DAGVAULT_API_MAX_BODY_BYTES": str(CAP),
    }
    with api_server(workdir, prefect_api_url, extra_env=env) as running:
        yield running


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


# POST /backup with a body of argv[3] bytes sent in 1 MiB pieces (chunked if argv[4] is
# "chunked", else with Content-Length) until the server answers or drops the connection;
# prints the answer's status (0 without one). Standalone: it also runs as another user.
STREAM_CLIENT = r"""
import re, select, socket, sys
port, authorization, total, framing = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
MiB = 1024 * 1024
head = "POST /backup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
head += f"Authorization: {authorization}\r\n" if authorization else ""
chunked = framing == "chunked"
head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n"
piece = b" " * MiB
if chunked:
    piece = b"%x\r\n" % MiB + piece + b"\r\n"
answer = b""
with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
    sock.sendall((head + "\r\n").encode())
    try:
        for _ in range(total // MiB):
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body ended
            sock.sendall(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after answering
    try:
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except ConnectionResetError:
        pass
match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
print(int(match.group(1)) if match else 0)
"""


def _push(
    port: int, authorization: str, total: int, *, chunked: bool, as_user: str | None = None
) -> int:
    command = [sys.executable, "-c", STREAM_CLIENT]
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", "/usr/bin/python3", "-c", STREAM_CLIENT]
    args = [str(port), authorization, str(total), "chunked" if chunked else "length"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout)


def test_big_bodies_are_refused_without_being_buffered(server: Server) -> None:
    """256 MiB to POST /backup, streamed (chunked) and declared (Content-Length), without
    and with the token: 401 or 413, and the server's peak memory grows by < 64 MiB. (Before,
    Starlette buffered the whole body before the 401: hundreds of MiB.)"""
    good = f"Bearer {TOKEN}"
    assert _push(server.port, "", MiB, chunked=True) == 401  # warm both paths up
    assert _push(server.port, good, MiB, chunked=True) == 413
    before = _peak_rss(server.pid)
    for authorization, chunked, status in (
        ("", True, 401),
        ("", False, 401),
        ("Bearer wrong-token-0123456789", True, 401),
        (good, True, 413),
        (good, False, 413),
    ):
        assert _push(server.port, authorization, 256 * MiB, chunked=chunked) == status
    assert _peak_rss(server.pid) - before < 64 * MiB
    assert httpx.get(server.url + "/health").status_code == 200
    refused = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    assert refused[-1]["status"] == 413 and refused[-1]["client"] == "127.0.0.1"
    assert "DAGVAULT_API_MAX_BODY_BYTES" not in refused[-1]["error"]  # the hint is not logged


def test_the_cap_is_the_configured_one(server: Server) -> None:
    with server.client(TOKEN) as http:
        over = http.post("/backup/cleanup", json={"dry_run": True, "x": "y" * CAP})
        assert over.status_code == 413, over.text
        assert over.headers["connection"] == "close"
        assert f"larger than {CAP} bytes" in over.json()["error"]
        assert "DAGVAULT_API_MAX_BODY_BYTES" in over.json()["hint"]
        under = http.post("/backup/cleanup", json={"dry_run": True, "x": "y" * (CAP // 2)})
        assert under.status_code == 400 and "x: " in under.json()["error"]  # read, then judged


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.name not in ("audit.jsonl", "server.log")}


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("/backup", {"backup_path": "./backups/%2e%2e/outside/evil"}, "backup_path"),
        ("/backup", {"backup_path": "./backups/%2E%2e%2Fevil"}, "backup_path"),
        ("/backup", {"backup_path": "./backups/new\\evil"}, "backup_path"),
        ("/backup", {"backup_path": "./backups/tab\tname"}, "backup_path"),
        ("/backup/export", {"export_path": "./exports/a\\b", "format": "csv"}, "export_path"),
        ("/backup/export", {"export_path": "./exports/%2e%2e/x", "format": "json"}, "export_path"),
        ("/backup/export", {"export_path": "./exports/esc\x1b[0m", "format": "sql"}, "export_path"),
        ("/backup/import", {"sql_path": "./exports/%2e%2e/dump.sql"}, "sql_path"),
    ],
)
def test_ambiguous_names_are_refused_before_anything_is_written(
    server: Server, endpoint: str, body: dict, field: str
) -> None:
    outside = server.workdir.parent
    before, around = _files(server.workdir), set(outside.iterdir())
    with server.client(TOKEN) as http:
        response = http.post(endpoint, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}: ")
    assert _files(server.workdir) == before
    assert set(outside.iterdir()) == around


def test_the_docs_page_loads_nothing_from_elsewhere(server: Server) -> None:
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert not re.search(r"(https?:)?//", page.text), "an absolute URL in /docs"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/docs/assets/")
        assert httpx.get(server.url + asset).status_code == 200
    assert '"validatorUrl": null' in page.text  # on, it would send the schema's URL out
    assert httpx.get(server.url + "/redoc").status_code == 404
    assert httpx.get(server.url + "/openapi.json").status_code == 200


def test_the_token_file_works_and_the_token_is_not_in_the_environment(server: Server) -> None:
    environ = Path(f"/proc/{server.pid}/environ").read_bytes()
    assert b"DAGVAULT_API_TOKEN_FILE=" in environ and TOKEN.encode() not in environ
    with server.client(TOKEN) as http:
        assert http.post("/backup/cleanup", json={"dry_run": True}).status_code == 200


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGVAULT_API_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "dagvault_cli", "api", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )


@pytest.mark.parametrize(
    ("mode", "content", "extra", "message"),
    [
        (0o644, TOKEN + "\n", {}, "is readable by other users (mode 0644)"),
        (0o640, TOKEN, {}, "is readable by other users (mode 0640)"),
        (0o600, "\n", {}, "does not hold a token on one line (empty)"),
        (0o600, TOKEN + "\nsecond line\n", {}, "does not hold a token on one line"),
        (0o600, "short\n", {}, "The API token is too short"),
        (0o600, TOKEN, {"DAGVAULT_API_TOKEN": TOKEN}, "Both DAGVAULT_API_TOKEN_FILE and"),
        (None, None, {}, "Cannot read DAGVAULT_API_TOKEN_FILE"),
    ],
)
def test_a_bad_token_file_stops_the_start(
    tmp_path: Path, mode: int | None, content: str | None, extra: dict, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None and mode is not None:
        path.write_text(content)
        path.chmod(mode)
    done = _start({"DAGVAULT_API_TOKEN_FILE": str(path), **extra})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Try:" in done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr


def test_an_authenticated_backup_is_audited_with_the_client_address(server: Server) -> None:
    with server.client(TOKEN) as http:
        response = http.post("/backup", json={"backup_path": "./backups/audited"})
    assert response.status_code == 200, response.text
    line = json.loads(server.audit_log.read_text().splitlines()[-1])
    assert line["action"] == "backup" and line["result"] == "success"
    assert line["client"] == "127.0.0.1" and line["who"].startswith("token:")
    assert line["flow_run_id"] == response.json()["data"]["flow_run_id"]


REFUSED = 10_000


def test_a_flood_of_refused_requests_grows_the_audit_log_by_a_bounded_amount(
    prefect_api_url: str, tmp_path: Path, token_file: Path
) -> None:
    """10,000 requests without the token (401s, and 405s for GET /backup): at most
    DENIED_PER_MINUTE lines a minute, plus one line counting the rest (written at the latest
    when the server stops); an operation run meanwhile is still logged."""
    env = {"DAGVAULT_API_TOKEN_FILE": str(token_file)}
    with api_server(tmp_path, prefect_api_url, extra_env=env) as running:

        def refuse(sender: int) -> None:
            with httpx.Client(base_url=running.url, timeout=60) as http:
                for _ in range(REFUSED // 4):
                    if sender == 0:
                        assert http.get("/backup").status_code == 405
                    else:
                        assert http.post("/backup/cleanup", json={}).status_code == 401

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(refuse, range(4)))
        with running.client(TOKEN) as http:
            assert http.post("/backup/cleanup", json={"dry_run": True}).status_code == 200
        log = running.audit_log
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    strangers = [e for e in lines if e.get("who") == "client:127.0.0.1"]
    summaries = [e for e in lines if e["result"] == "suppressed"]
    assert {(e["result"], e["status"]) for e in strangers} <= {("denied", 401), ("failure", 405)}
    assert all(e["client"] == "127.0.0.1" for e in strangers)
    assert len(strangers) + sum(s["suppressed"] for s in summaries) == REFUSED
    assert summaries and all(s["clients"] == {"127.0.0.1": s["suppressed"]} for s in summaries)
    minutes = len(summaries)  # a summary closes each minute that suppressed anything
    assert len(strangers) <= 60 * minutes
    assert log.stat().st_size < 400 * (60 + 1) * minutes
    others = [e for e in lines if e not in strangers and e not in summaries]
    assert [(e["action"], e["result"], e["client"]) for e in others] == [
        ("cleanup", "success", "127.0.0.1")
    ]


def test_without_a_token_another_users_body_is_never_read(
    prefect_api_url: str, tmp_path: Path
) -> None:
    """A token-less server (loopback): a process of another local user gets 401 for 256 MiB
    without the server reading it; the server's own user gets 413 past the cap."""
    if os.geteuid() != 0 or not shutil.which("runuser") or not Path("/usr/bin/python3").exists():
        pytest.skip("needs root, runuser and /usr/bin/python3 to act as another local user")
    with api_server(tmp_path, prefect_api_url) as running:
        assert _push(running.port, "", MiB, chunked=True, as_user="nobody") == 401
        assert _push(running.port, "", MiB, chunked=True) == 413
        before = _peak_rss(running.pid)
        assert _push(running.port, "", 256 * MiB, chunked=True, as_user="nobody") == 401
        assert _push(running.port, "", 256 * MiB, chunked=False) == 413
        assert _peak_rss(running.pid) - before < 64 * MiB
