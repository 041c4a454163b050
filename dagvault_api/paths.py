"""Every path in a request must stay inside one configured directory (BACKUP_DIR or EXPORT_DIR).

A request names a path the way the documented scripts do: relative to the server's
working directory (``./backups/blockchain_1704067200.db`` with BACKUP_DIR=./backups) or
absolute. A relative path that lands outside the directory but is a bare name
(``./test_backup``, as in the documented curl example) names an entry of the directory.
Rejected with a 400: a ``..`` component, control characters (NUL included), a backslash
(a separator on Windows, an escape to globbing and URL layers), a percent-escape such as
``%2e`` (a layer that treats the path as a URL would read another name than the one on
disk), and any path whose real location (symlinks followed) is outside the directory.
Names are taken literally: the path proven here is the one every later layer opens
(dagvault.quality keeps it literal too). Accepted paths are handed on in the directory's
configured spelling (``backups/x.db``), so results and errors show no other part of the
filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dagvault.errors import PathRejected
from dagvault.operations.common import MAX_PATH_CHARS, encodable

NAME_MAX = 255  # bytes per file name on Linux filesystems (ENAMETOOLONG beyond)
# Characters no request path may hold: C0/C1 controls and DEL, a backslash, or a
# percent-escape (%2e, %2F…) that a URL layer would decode into another name.
_AMBIGUOUS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]|%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class Area:
    """One directory requests may touch; ``setting`` names it in errors."""

    configured: Path
    setting: str
    base: Path  # the server's working directory at start (relative paths resolve here)

    @property
    def root(self) -> Path:
        return (self.base / self.configured).resolve()

    def _shown(self, real: Path) -> Path:
        """``real`` (inside the root) in the directory's configured spelling."""
        inside = real.relative_to(self.root)
        return self.configured if inside == Path(".") else self.configured / inside

    def confine(self, field: str, raw: str) -> Path:
        """The path ``raw`` names, proven inside the directory, in its configured spelling."""
        if not raw.strip():
            raise PathRejected(field, "must not be empty", f"Name a path inside {self.setting}.")
        given = PurePosixPath(raw)
        if len(raw) > MAX_PATH_CHARS or not encodable(raw):
            raise PathRejected(field, "is not a valid path", f"Name a path inside {self.setting}.")
        bad = _AMBIGUOUS.search(raw)
        if bad:
            raise PathRejected(
                field,
                f"{bad.group()!r} is not allowed in a path (control characters, backslashes "
                "and %-escapes are refused)",
                f"Name the file inside {self.setting} with plain characters, e.g. "
                "letters, digits, '.', '_', '-' and '/'.",
            )
        if any(len(part.encode()) > NAME_MAX for part in given.parts):
            raise PathRejected(
                field, f"a name in the path is longer than {NAME_MAX} bytes", "Use a shorter name."
            )
        if ".." in given.parts:
            raise PathRejected(
                field,
                "'..' is not allowed in a path",
                f"Name the file inside {self.setting} without '..'.",
            )
        root = self.root
        real = _resolved(self.base / given, field, raw)
        if not real.is_relative_to(root) and not given.is_absolute() and len(given.parts) == 1:
            real = _resolved(root / given, field, raw)
        if not real.is_relative_to(root):
            raise PathRejected(
                field,
                f"{raw!r} is outside {self.setting} ({self.configured})",
                f"Name a path inside {self.configured}; absolute paths elsewhere and symlinks "
                "that leave it are refused.",
            )
        return self._shown(real)

    def is_directory(self, shown: Path) -> bool:
        return (self.base / shown).is_dir()


# Looks at a path whose directories another user keeps swapping, before it is refused.
_RESOLVE_ATTEMPTS = 3


def _resolved(path: Path, field: str, raw: str) -> Path:
    """``path.resolve()``; a component swapped between its lstat and its readlink (EINVAL:
    no longer a link), or a link loop seen mid-swap (pathlib's RuntimeError), is looked at
    again, and a path that keeps changing is refused."""
    for _ in range(_RESOLVE_ATTEMPTS):
        try:
            return path.resolve()
        except (OSError, RuntimeError):
            continue
    raise PathRejected(
        field,
        f"{raw!r} kept changing while it was checked (a directory in it is being replaced)",
        "Check who else can write there (chmod 700 the directory), then send the request again.",
    )
