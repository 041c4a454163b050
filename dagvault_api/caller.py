"""Who is calling, decided from the connection and the headers alone, before any byte of
the request body is read (limits.py relies on that: a stranger's body is never buffered).

With a token, a caller is authenticated by ``Authorization: Bearer <token>``; without one,
by running as the server's own user or root (peer.py). The verdict is computed once per
request and kept in the ASGI scope's state, which Starlette's ``request.state`` shares.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from dagvault_api import auth
from dagvault_api.peer import peer_uid

_STATE_KEY = "dagvault_caller"


@dataclass(frozen=True)
class Caller:
    address: str  # the client's IP address ("unknown" without one), on every audit line
    who: str  # the audit log's name: the token's fingerprint, else client:<address>
    authenticated: bool


def _bearer(scope: MutableMapping[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
    return None


def _own_user(scope: MutableMapping[str, Any]) -> bool:
    """Every account on the node can reach a loopback port: without a token only processes
    of the server's own user (or root) count as authenticated."""
    client, server = scope.get("client"), scope.get("server")
    if not client or not server:
        return False
    return peer_uid((client[0], client[1]), (server[0], server[1])) in (os.geteuid(), 0)


def identify(scope: MutableMapping[str, Any], token: str | None) -> Caller:
    """The caller of this request (computed once, then read from the scope's state)."""
    state = scope.setdefault("state", {})
    known = state.get(_STATE_KEY)
    if isinstance(known, Caller):
        return known
    address = scope["client"][0] if scope.get("client") else "unknown"
    if token is None:
        caller = Caller(address, f"client:{address}", _own_user(scope))
    else:
        presented = _bearer(scope)
        if presented is not None and auth.token_matches(presented, token):
            caller = Caller(address, auth.fingerprint(token), True)
        else:
            caller = Caller(address, f"client:{address}", False)
    state[_STATE_KEY] = caller
    return caller
