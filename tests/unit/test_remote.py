"""Backups at storage targets, core API: a real S3-compatible server (moto's server mode,
the session's ``s3_endpoint``) on loopback, credentials in the standard AWS environment
variables, and file:// directories. No GCS server: gs:// goes through the same fsspec
store, and no GCS emulator ships on PyPI.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_remote.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagvault.catalog import list_backups
from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.storage import open_store
from dagvault.storage.offsite.replicate import replicate
from dagvault.verify import verify_file


def test_a_second_disk_as_file_url_is_an_ordinary_backup_directory(
    backups: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk2"
    replicate(backups, open_store(disk.as_uri()), None)
    entries = list_backups(disk)
    assert len(entries) == 2
    assert all(verify_file(e.path).ok for e in entries)
    assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]


def test_targets_in_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "dagvault.json"
    config.write_text(
        json.dumps(
            {"backup": {"directory": "S3://bucket/node/", "replicas": ["/mnt/d2", "gs://b/p"]}}
        )
    )
    settings = load_settings(config_file=config, environ={})
    assert settings.backup_dir == "s3://bucket/node"
    assert settings.replicas == ("file:///mnt/d2", "gs://b/p")
    from_env = load_settings(environ={"BACKUP_REPLICAS": "s3://a/b, file:///x"})
    assert from_env.replicas == ("s3://a/b", "file:///x")
    assert load_settings(environ={}).backup_dir == Path("./backups")
    with pytest.raises(ConfigError, match="BACKUP_DIR"):
        load_settings(environ={"BACKUP_DIR": "s3://"})
    with pytest.raises(ConfigError, match="not available"):
        open_store("nosuchprotocol://bucket/x")
