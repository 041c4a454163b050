"""Who may call what: the bearer token (DAGVAULT_API_TOKEN) and the bind policy.

- A token configured: mutating endpoints need ``Authorization: Bearer <token>``; on an
  address other than loopback the read-only ones need it too (only /health stays open,
  for load balancers).
- No token: the server listens on loopback only (any other address is refused) and lets
  only processes of its own user, or root, change anything (peer.py finds the uid owning the
  client's socket); the description's scripts, which send no credentials, run as that user.

The token is compared in constant time and never logged; the audit log names a caller by
the token's fingerprint (the first 12 hex digits of its SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import pwd

from dagvault.errors import ConfigError

TOKEN_ENV = "DAGVAULT_API_TOKEN"
# A shorter secret can be guessed over the network; 16 characters of `openssl rand -hex 16`
# or similar are plenty.
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other host name may resolve to a public address


def check_bind(host: str, token: str | None) -> None:
    """Refuse a server that would be reachable from the network without a token."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} is too short ({len(token)} characters; at least {MIN_TOKEN_CHARS})",
            f"Generate one with `openssl rand -hex 32` and set {TOKEN_ENV}.",
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"Refusing to listen on {host} without {TOKEN_ENV}: anyone who can reach it could "
            "restore or delete backups",
            f"Set {TOKEN_ENV} (e.g. `export {TOKEN_ENV}=$(openssl rand -hex 32)`), or listen on "
            "127.0.0.1.",
        )


def tokenless_warning(host: str) -> str:
    """What a server without a token allows (app.py's _require_own_user enforces it)."""
    uid = os.geteuid()
    try:
        user = f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        user = f"uid {uid}"
    who = f"only processes of user {user} and root may" if uid else "only root's processes may"
    if not os.path.exists("/proc/net/tcp"):  # peer.py cannot tell who the client is
        who = "no client may (this system does not show who owns a connection)"
    return (
        f"Warning: no {TOKEN_ENV}: listening on {host} (loopback only); {who} back up, "
        "restore, export, import, verify or clean up. Every local account may read (list, "
        f"schedule, health, metrics). Set {TOKEN_ENV} to require a bearer token instead."
    )


def token_matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8"))


def fingerprint(token: str) -> str:
    return "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]
