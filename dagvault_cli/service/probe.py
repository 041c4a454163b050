"""Is a part of the service answering? Plain HTTP with short timeouts: a dead or hung part
is a quick False, never a hang of the caller."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

TIMEOUT_SECONDS = 2.0
# The service listens on this machine: an http_proxy from the environment must not be used.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(url: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={**headers, "Content-Type": "application/json"}
    )
    with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
        return json.loads(response.read() or b"null")


def prefect_headers(auth: str | None) -> dict[str, str]:
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def prefect(url: str, auth: str | None, path: str, body: dict[str, Any] | None = None) -> Any:
    """A call to the Prefect API at ``url`` (``…/api``); raises OSError when it fails."""
    return _call(f"{url}{path}", prefect_headers(auth), body)


def prefect_healthy(url: str, auth: str | None) -> bool:
    try:
        return prefect(url, auth, "/health") is True
    except (OSError, ValueError):
        return False


def api_get(url: str, token: str, path: str) -> Any:
    """A read from the HTTP API; raises OSError when it fails."""
    return _call(f"{url}{path}", {"Authorization": f"Bearer {token}"})


def api_health(url: str, token: str) -> dict[str, Any] | None:
    """The API's ``GET /health`` data, or None when it does not answer."""
    try:
        envelope = api_get(url, token, "/health")
    except (OSError, ValueError):
        return None
    return envelope.get("data") if isinstance(envelope, dict) else None


def api_healthy(url: str, token: str) -> bool:
    return api_health(url, token) is not None


def deployments_served(url: str, auth: str | None) -> bool:
    """The served deployments are registered with the Prefect server."""
    try:
        found = prefect(url, auth, "/deployments/filter", {"limit": 1})
    except (OSError, ValueError):
        return False
    return bool(found)


# A flow run in one of these states is work in flight: `dagvault down` lets it finish.
IN_FLIGHT = ["PENDING", "RUNNING", "CANCELLING"]


def operations_in_flight(url: str, auth: str | None, since: datetime) -> list[str]:
    """Names of dagvault's flow runs (tag ``dagvault``) in flight that started at or after
    ``since``: runs a process killed before this service started stay "Running" in Prefect's
    history forever and are nobody's to wait for. Empty when Prefect does not answer: then
    nothing can be waited for."""
    body = {
        "flow_runs": {"state": {"type": {"any_": IN_FLIGHT}}, "tags": {"all_": ["dagvault"]}},
        "limit": 100,
    }
    try:
        runs = prefect(url, auth, "/flow_runs/filter", body)
    except (OSError, ValueError):
        return []
    return [
        str(run.get("name"))
        for run in runs or []
        if (started := run.get("start_time") or run.get("expected_start_time"))
        and datetime.fromisoformat(started) >= since
    ]
