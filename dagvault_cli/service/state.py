"""The node service's state directory: who runs, where it listens, its secrets and logs.

Layout of ``DAGVAULT_STATE_DIR`` (default ``$XDG_STATE_HOME/dagvault``, else
``~/.local/state/dagvault``), created 0700:

* ``service.lock``: held (flock) by the supervisor for as long as it lives. The kernel drops it
  when the supervisor dies, however it dies, so a leftover ``service.json`` is recognised as
  stale at once; no PID guessing.
* ``service.json``: PIDs and URLs, written atomically by the supervisor once every part
  answers; removed when it stops.
* ``api-token`` and ``prefect-auth``: the API's bearer token and the Prefect server's basic-auth
  string, 0600, made once and kept (clients and the Prefect UI keep working across restarts).
* ``prefect/``: the PREFECT_HOME of the service's own Prefect server (its database).
* ``logs/``: one log file per part.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dagvault.errors import ConfigError
from dagvault.fsio import ensure_dir, write_atomic
from dagvault.permissions import owner_only

STATE_DIR_ENV = "DAGVAULT_STATE_DIR"
STATE_FORMAT = 1


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dagvault"


def state_dir(given: str | None = None) -> Path:
    """The state directory: ``--state-dir``, else DAGVAULT_STATE_DIR, else the default."""
    return Path(given or os.environ.get(STATE_DIR_ENV) or default_state_dir()).absolute()


@dataclass
class ServiceInfo:
    """What ``service.json`` holds: enough for ``status``, ``down`` and CLI clients."""

    supervisor_pid: int
    started_at: str
    api_url: str
    prefect_api_url: str
    prefect_ui_url: str | None  # None: an external Prefect server the service did not start
    config_file: str | None
    children: dict[str, int] = field(default_factory=dict)  # part name -> PID
    format: int = STATE_FORMAT


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def lock_file(self) -> Path:
        return self.root / "service.lock"

    @property
    def info_file(self) -> Path:
        return self.root / "service.json"

    @property
    def api_token_file(self) -> Path:
        return self.root / "api-token"

    @property
    def prefect_auth_file(self) -> Path:
        return self.root / "prefect-auth"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log_file(self, part: str) -> Path:
        return self.logs / f"{part}.log"

    def prepare(self) -> None:
        for directory in (self.root, self.logs, self.prefect_home):
            ensure_dir(directory)
        _secret_file(self.api_token_file, lambda: secrets.token_urlsafe(32))
        _secret_file(self.prefect_auth_file, lambda: f"dagvault:{secrets.token_urlsafe(24)}")

    def api_token(self) -> str:
        return self.api_token_file.read_text(encoding="utf-8").strip()

    def prefect_auth(self) -> str:
        return self.prefect_auth_file.read_text(encoding="utf-8").strip()

    # --- the supervisor's lock ------------------------------------------------------------

    def take_lock(self) -> int | None:
        """The supervisor's lock as an open descriptor, or None when another holds it."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def claim(self) -> int | None:
        """Take the lock for this process and write its PID into the lock file (for
        ``down``); None when a supervisor already runs."""
        fd = self.take_lock()
        if fd is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def supervisor_pid(self) -> int | None:
        """The running supervisor's PID (it holds the lock), or None when none runs."""
        if not self.supervisor_alive():
            return None
        try:
            return int(self.lock_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None  # it holds the lock but has not written its PID yet

    def supervisor_alive(self) -> bool:
        """Whether a supervisor holds the lock (it lives exactly as long as the process)."""
        if not self.lock_file.exists():
            return False
        fd = self.take_lock()
        if fd is None:
            return True
        os.close(fd)
        return False

    # --- service.json ---------------------------------------------------------------------

    def write_info(self, info: ServiceInfo) -> None:
        with owner_only():
            write_atomic(self.info_file, json.dumps(asdict(info), indent=2).encode())

    def read_info(self) -> ServiceInfo | None:
        """The running service's info; None when none runs (a stale file is removed)."""
        try:
            document: dict[str, Any] = json.loads(self.info_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"Cannot read {self.info_file}: {exc}",
                "Run `dagvault down` and `dagvault up` again.",
            ) from exc
        if not self.supervisor_alive():
            self.forget()
            return None
        document.pop("format", None)
        return ServiceInfo(**document)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.info_file.unlink()


def _secret_file(path: Path, make: Any) -> None:
    """Create ``path`` 0600 with a new secret unless it exists; refuse one others can read."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"{path} is readable by other users",
                f"chmod 600 {path} (or delete it: a new secret is made at the next start).",
            )
        return
    with owner_only():
        write_atomic(path, (make() + "\n").encode(), overwrite=False)
