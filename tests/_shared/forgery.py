"""Shared by the unit and the integration half of test_forgery.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    legacy_sidecar,
    read_meta_json,
    sha3_file,
    write_meta_json,
)

from dagvault.crypto import generate_key_file


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    return path


def reseal(path: Path, document: dict[str, Any]) -> None:
    """What any forger can do: point the sidecar at ``path``'s bytes and recompute the
    unkeyed meta_checksum."""
    document.update(checksum=sha3_file(path), file_size=path.stat().st_size, backup_path=str(path))
    write_meta_json(path, document)


# Legacy sidecars ----------------------------------------------------------------------


def as_format(backup: Path, version: int) -> None:
    """Rewrite a genuine sidecar as dagvault wrote it in format ``version`` (1 or 2)."""
    document = read_meta_json(backup)
    document.pop("auth_tag", None)
    backup.with_name(backup.name + ".meta").write_text(
        json.dumps(legacy_sidecar(document, version))
    )
