"""Who may call what: the bearer token (DAGVAULT_API_TOKEN_FILE or DAGVAULT_API_TOKEN) and
the bind policy.

- A token configured: mutating endpoints need ``Authorization: Bearer <token>``; on an
  address other than loopback the read-only ones need it too (only /health stays open,
  for load balancers).
- No token: the server listens on loopback only (any other address is refused) and lets
  only processes of its own user, or root, change anything (peer.py finds the uid owning the
  client's socket); the documented scripts, which send no credentials, run as that user.

The token is best given as a file (DAGVAULT_API_TOKEN_FILE, the ``_FILE`` convention of
Docker secrets and systemd credentials): a process's environment stays readable in
/proc/PID/environ by its user and root for its whole life, whatever the process removes from
``os.environ`` later. The file must be readable by its owner only.

The token is compared in constant time and never logged; the audit log names a caller by
the token's fingerprint (the first 12 hex digits of its SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import pwd
import stat
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dagvault.errors import ConfigError
from dagvault_api.service import ApiError

TOKEN_ENV = "DAGVAULT_API_TOKEN"
TOKEN_FILE_ENV = "DAGVAULT_API_TOKEN_FILE"
# A token file is one line; anything longer is not a token file (a key, a config file).
MAX_TOKEN_FILE_BYTES = 4096
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


def load_token(environ: MutableMapping[str, str]) -> str | None:
    """The token from DAGVAULT_API_TOKEN_FILE or DAGVAULT_API_TOKEN (an empty value counts as
    unset), or None. DAGVAULT_API_TOKEN is removed from ``environ``: child processes (Prefect's
    temporary server) have no use for it."""
    inline = environ.pop(TOKEN_ENV, "") or None
    file_name = environ.get(TOKEN_FILE_ENV, "") or None
    if file_name is None:
        return inline
    if inline is not None:
        raise ConfigError(
            f"Both {TOKEN_FILE_ENV} and {TOKEN_ENV} are set",
            f"Keep {TOKEN_FILE_ENV} (the environment is readable in /proc/PID/environ) and "
            f"unset {TOKEN_ENV}.",
        )
    return read_token_file(Path(file_name))


def read_token_file(path: Path) -> str:
    """The first line of ``path`` (a trailing newline is not part of the token). Refused:
    a file that is missing, empty, not regular, or readable by group or others."""
    hint = (
        f"Write the token alone into a file only its owner can read: `umask 077; openssl rand "
        f"-hex 32 > {path}` (or `chmod 600 {path}`), and point {TOKEN_FILE_ENV} at it."
    )
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())  # of the file opened, not of a name swapped since
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{TOKEN_FILE_ENV} {path} is not a regular file", hint)
            if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
                raise ConfigError(
                    f"{TOKEN_FILE_ENV} {path} is readable by other users "
                    f"(mode {stat.S_IMODE(info.st_mode):04o})",
                    hint,
                )
            data = fh.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {TOKEN_FILE_ENV} {path}: {exc.strerror or exc}", hint
        ) from None
    try:
        token = data.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        token = "\n"  # refused below, as any text a header cannot carry
    if len(data) > MAX_TOKEN_FILE_BYTES or not token or not token.isprintable():
        raise ConfigError(
            f"{TOKEN_FILE_ENV} {path} does not hold a token on one line "
            f"({'empty' if not data.strip() else 'unexpected content'})",
            hint,
        )
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse a server that would be reachable from the network without a token."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"The API token is too short ({len(token)} characters; at least {MIN_TOKEN_CHARS})",
            f"Generate one into a private file (`umask 077; openssl rand -hex 32 > FILE`) and "
            f"set {TOKEN_FILE_ENV}=FILE.",
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"Refusing to listen on {host} without {TOKEN_ENV}: anyone who can reach it could "
            "restore or delete backups",
            "Give it a token in a private file (`umask 077; openssl rand -hex 32 > FILE`, then "
            f"{TOKEN_FILE_ENV}=FILE), or listen on 127.0.0.1.",
        )


# Module-level: the check's annotations below are strings, resolved in this module's globals.
_BEARER = HTTPBearer(auto_error=False, description="DAGVAULT_API_TOKEN")


def token_check(token: str | None) -> Callable[..., None]:
    """The FastAPI dependency every endpoint that needs the caller's authority declares."""

    def require_token(
        request: Request,
        # Publishes the bearer scheme in OpenAPI; the check itself is caller.py's, made from
        # the headers before the body was read (limits.py).
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        # Imported here: caller.py uses this module's token checks (an import cycle).
        from dagvault_api.caller import identify

        if identify(request.scope, token).authenticated:
            return
        request.state.denied = True
        if token is None:
            raise ApiError(
                401,
                "Without DAGVAULT_API_TOKEN only processes of the user running the server may "
                "change anything",
                "Run the client as that user, or give the server a token "
                "(DAGVAULT_API_TOKEN_FILE) and send `Authorization: Bearer <token>`.",
            )
        raise ApiError(
            401,
            "Missing or wrong bearer token",
            "Send `Authorization: Bearer <token>` with the server's DAGVAULT_API_TOKEN.",
        )

    return require_token


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
