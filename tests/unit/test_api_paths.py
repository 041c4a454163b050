"""dagvault_api.paths: a path whose directories another user swaps while it is resolved (the
kernel then answers EINVAL to a readlink of what lstat had seen as a link) is looked at
again, and refused with a 400 if it keeps changing: never a 500 (tests/integration/
test_symlink_race.py races it for real)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dagvault.errors import PathRejected, http_status
from dagvault_api.paths import Area

real_resolve = Path.resolve


def _swapped(times: int):  # type: ignore[no-untyped-def]
    left = [times]

    def resolve(self: Path, strict: bool = False) -> Path:
        if left[0] > 0 and self.name == "racy":
            left[0] -= 1
            if left[0] % 2:
                raise OSError(errno.EINVAL, "Invalid argument", str(self))
            raise RuntimeError(f"Symlink loop from {str(self)!r}")
        return real_resolve(self, strict)

    return resolve


def test_a_path_swapped_once_is_resolved_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = Area(tmp_path, "BACKUP_DIR", tmp_path)
    monkeypatch.setattr(Path, "resolve", _swapped(2))
    assert area.confine("backup_path", "racy") == tmp_path / "racy"


def test_a_path_that_keeps_changing_is_refused_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = Area(tmp_path, "BACKUP_DIR", tmp_path)
    monkeypatch.setattr(Path, "resolve", _swapped(100))
    with pytest.raises(PathRejected, match="kept changing while it was checked") as caught:
        area.confine("backup_path", "racy")
    assert http_status(caught.value) == 400
