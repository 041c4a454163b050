"""The CLI as the node service's client: while ``dagvault up`` runs, a command's operation
runs there (Prefect and GX imported already), else here, as it always did.

``run_operation`` has the launcher's signature, so a command does not know which it got:
the same typed result, the same event lines on stderr, the same exceptions and exit codes.
The service is used when it runs for this state directory (DAGVAULT_STATE_DIR), takes the
operation, and runs with the settings this command resolved; otherwise the operation runs
in this process. Decisions (docs/service.md):

* no service: run here; on a terminal one line says how to make commands fast;
* a service that does not answer, or declines (other settings, a path outside its
  directories, an operation it does not take): run here, with one line saying why;
* a service that stops while it runs the operation: ``ServiceLost`` (exit 9), never a
  hang and never a second run of the operation here (it may have half-run there: its own
  guarantees leave nothing half-written that looks valid).

While it waits, a command that draws a progress bar (on a terminal, without --json) asks the
service for the run's progress twice a second (``GET /progress/<ticket>``) and reports it
here (dagvault.progress), so the bar moves as it does in-process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagvault import errors, progress
from dagvault.config import Settings, settings_document
from dagvault.errors import DagvaultError, ServiceLost
from dagvault.operations.common import Options
from dagvault.operations.registry import HANDED_OVER, OPERATIONS
from dagvault_cli.service.state import StateDir, state_dir
from flows import launcher

# Operations the service does not take (HANDED_OVER), and flags that write outside its
# directories (replication targets), run here.
_CONNECT_SECONDS = 2.0
# The service may queue the operation behind another (its concurrency limits) for as
# long as a lock wait allows; a service that died closes the connection at once.
_ANSWER_SECONDS: float | None = None
_PROGRESS_SECONDS = 0.5  # how often a bar asks for the run's progress
FAST_HINT = "note: `dagvault up` keeps a service running that makes commands like this fast"


class _Declined(Exception):
    """The service will not run this operation (why): it runs here instead."""


def run_operation(
    operation: str,
    options: Options | None = None,
    /,
    *,
    settings: Settings,
    **parameters: Any,
) -> Any:
    """``flows.launcher.run_operation``, run by the node service when it can."""
    try:
        answer = _hand_over(operation, options, settings, parameters)
    except _Declined as declined:
        if str(declined):
            print(f"note: running here: {declined}", file=sys.stderr)
        return launcher.run_operation(operation, options, settings=settings, **parameters)
    return answer


def _hand_over(
    operation: str, options: Options | None, settings: Settings, parameters: dict[str, Any]
) -> Any:
    state = StateDir(state_dir())
    try:
        info = state.read_info()
        token = state.api_token() if info else None
    except (OSError, DagvaultError):
        info = None
    if info is None or token is None:
        if sys.stderr.isatty():
            print(FAST_HINT, file=sys.stderr)
        raise _Declined("")
    if operation not in HANDED_OVER:
        raise _Declined("")  # documented: these always run in the command's process
    if parameters.get("replicate_to"):
        raise _Declined("--replicate-to writes outside the service's directories")
    parameters = {k: v for k, v in parameters.items() if k != "config_file"}
    body = {
        "options": _absolute_paths(options.model_dump(mode="json") if options else {}),
        "parameters": _absolute_paths({k: v for k, v in parameters.items() if v is not None}),
        "settings": settings_document(settings, Path.cwd()),
    }
    ticket = secrets.token_hex(16) if progress.listened() else None
    if ticket is not None:
        body["progress"] = ticket
    with _following(info.api_url, token, ticket):
        status, document = _post(info.api_url, f"/operations/{operation}", token, body)
    data = document.get("data") or {}
    for line in data.get("events", []):
        print(line, file=sys.stderr)
    if status == 200 and document.get("success"):
        return _typed_result(operation, data["result"])
    error_type = data.get("error_type")
    if error_type in {"HandoffDeclined", "PathRejected"} or status == 404:
        raise _Declined(document.get("error") or "declined")
    raise _failure(error_type, document, data)


def _absolute_paths(values: dict[str, Any]) -> dict[str, Any]:
    """Paths the service resolves against its own working directory: make them absolute
    against this command's (a storage URL stays as it is)."""
    paths = {"backup_path", "sql_path", "out"}
    return {
        k: (str(Path(v).absolute()) if k in paths and isinstance(v, str) and "://" not in v else v)
        for k, v in values.items()
    }


def _post(api_url: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = urllib.parse.urlsplit(api_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=_CONNECT_SECONDS)
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise _Declined(f"the service at {api_url} does not answer ({exc})") from None
        connection.sock.settimeout(_ANSWER_SECONDS)
        payload = json.dumps(body).encode()
        try:
            connection.request(
                "POST",
                path,
                payload,
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServiceLost(
                f"The dagvault service at {api_url} stopped while it ran the operation ({exc})",
                "`dagvault status` shows what runs; `dagvault up` restarts it; then run the "
                "command again (nothing half-written looks valid: verify checks).",
            ) from None
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        raise _Declined(f"the service answered {response.status} without JSON") from None


@contextlib.contextmanager
def _following(api_url: str, token: str, ticket: str | None) -> Iterator[None]:
    """While the block waits for the answer, report the run's progress here (a thread
    asking the service for ``ticket``'s latest step). Its failures are silent: the
    operation's own request says whether the service answers."""
    if ticket is None:
        yield
        return
    done = threading.Event()
    url = urllib.parse.urlsplit(api_url)

    def follow() -> None:
        while True:
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=2)
            try:
                connection.request(
                    "GET", f"/progress/{ticket}", headers={"Authorization": f"Bearer {token}"}
                )
                step = json.loads(connection.getresponse().read()).get("data")
            except (OSError, http.client.HTTPException, ValueError):
                step = None
            finally:
                connection.close()
            if step and not done.is_set():
                progress.report(step["stage"], step["done"], step["total"])
            if done.wait(_PROGRESS_SECONDS):
                return

    thread = threading.Thread(target=follow, name="dagvault-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=3)


def _typed_result(operation: str, document: Any) -> Any:
    return OPERATIONS[operation].result.model_validate(document)


def _failure(error_type: str | None, document: dict[str, Any], data: dict[str, Any]) -> Exception:
    """The failure as the in-process run would have raised it: its class (exit code), its
    message and hint, and its reports where it has them."""
    cls = getattr(errors, error_type or "", None)
    if not (isinstance(cls, type) and issubclass(cls, DagvaultError)):
        cls = DagvaultError
    failure = cls.__new__(cls)
    hint = data.get("cli_hint") or document.get("hint") or ""
    DagvaultError.__init__(failure, document.get("error") or "failed", hint)
    if "reports" in data:
        failure.reports = data["reports"]  # type: ignore[attr-defined]
    return failure
