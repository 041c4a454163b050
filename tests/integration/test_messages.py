"""Messages that point the right way (issue #14): each names what is actually wrong —
the edited .meta field, where a setting came from, the config file's line and column,
the object the user asked for — and every failed backup logs the description's ❌ line.

Run through the real CLI against the test Prefect server, on the odd ledger.

Integration half; the tests that need no server or child process are in
tests/unit/test_messages.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import (
    content_digest,
    write_odd_ledger_config,
)
from _shared.messages import _edit_sidecar
from conftest import CliRunner

from dagvault.crypto import generate_key_file, load_key
from dagvault.legacy import sign_legacy
from dagvault.meta import read_meta
from dagvault.storage import open_store
from dagvault.storage.offsite.objects import upload_backup

CROSS = "❌ Backup creation failed: "


# --- an edited .meta names the edited field ------------------------------------------


def test_cli_verify_of_an_edited_checksum_names_the_checksum_field(
    cli: CliRunner, odd_backup: Path, tmp_path: Path
) -> None:
    _edit_sidecar(odd_backup, lambda d: d.update(checksum="0" * 64))
    config = write_odd_ledger_config(tmp_path)
    done = cli("verify", "--config", str(config), str(odd_backup))
    assert done.returncode == 4, done.stderr
    output = done.stdout + done.stderr
    assert f"{odd_backup.name}.meta was edited after it was written" in output
    assert "field 'checksum' says 000" in output
    assert "total_nodes" not in output  # the old message blamed the wrong field
    assert "Error: " in done.stderr and "Try: " in done.stderr and "Traceback" not in output


# --- the source of a setting ------------------------------------------------------------


def test_restore_names_what_turned_the_pre_restore_backup_off(
    cli: CliRunner, odd_ledger: Path, odd_backup: Path, tmp_path: Path
) -> None:
    for name in ("plain", "off"):
        (tmp_path / name).mkdir()
    plain = write_odd_ledger_config(tmp_path / "plain")
    off = write_odd_ledger_config(tmp_path / "off", restore={"create_pre_restore_backup": False})
    runs = {
        "--no-pre-restore-backup (API: create_pre_restore_backup=false)": (
            ["--config", str(plain), "--no-pre-restore-backup"],
            {},
        ),
        "environment variable CREATE_PRE_RESTORE_BACKUP": (
            ["--config", str(plain)],
            {"CREATE_PRE_RESTORE_BACKUP": "false"},
        ),
        f"restore.create_pre_restore_backup in {off}": (["--config", str(off)], {}),
    }
    for source, (flags, env) in runs.items():
        done = cli("restore", str(odd_backup), "--db", str(odd_ledger), *flags, env=env)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stdout.splitlines() if "pre-restore backup" in line]
        assert warnings == [f"   warning: no pre-restore backup taken: {source} turned it off"]
    assert not list(odd_ledger.parent.glob("*.pre_restore_*"))


# --- a bad config file ---------------------------------------------------------------


def test_a_json_syntax_error_names_file_line_column_and_the_mistake(
    cli: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "dagvault.json"
    config.write_text('{\n  "backup": {\n    "retention_count": 5,\n  }\n}\n')
    done = cli("list", "--config", str(config), "--backup-dir", str(tmp_path / "backups"))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"Error: Config file {config} is not valid JSON: line 4, column 3: "
        "a trailing comma before '}'"
    )
    assert f"Try: Fix line 4 of {config}" in done.stderr
    assert "Traceback" not in done.stderr


# --- import-sql logs paths that exist ------------------------------------------------


def test_import_sql_logs_only_paths_that_exist(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path
) -> None:
    from dagvault.export.run import export_database

    config = write_odd_ledger_config(tmp_path)
    dump = tmp_path / "ledger.sql"
    export_database("sql", database=odd_ledger, out=dump, export_dir=tmp_path)
    done = cli("import-sql", "--config", str(config), "--db", str(odd_ledger), str(dump))
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert f"✅ Database {odd_ledger} imported from SQL dump: {dump}" in output
    logged = re.findall(r"(?:📦|✅) [^:\n]*: (\S+)", output)
    assert logged, output
    assert [p for p in logged if not Path(p).exists()] == []  # no removed staging file
    assert ".dagvault-import." not in output


# --- encrypted backups: the key --------------------------------------------------------


@pytest.fixture
def encrypted(odd_backup: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(key file, a directory holding the odd backup encrypted as a file:// target does)."""
    key = tmp_path / "backup.key"
    generate_key_file(key)
    target = tmp_path / "copy"
    target.mkdir()
    sign_legacy(odd_backup, load_key(key))  # with a key, a backup is restored only tagged
    upload_backup(odd_backup, read_meta(odd_backup), open_store(target.as_uri()), load_key(key))
    return key, target


def test_a_wrong_key_names_the_s3_object_asked_for(
    cli: CliRunner, odd_backup: Path, s3_target: str, tmp_path: Path
) -> None:
    key, wrong = tmp_path / "right.key", tmp_path / "wrong.key"
    generate_key_file(key)
    generate_key_file(wrong)
    upload_backup(odd_backup, read_meta(odd_backup), open_store(s3_target), load_key(key))
    url = f"{s3_target}/{odd_backup.name}.enc"
    done = cli("restore", url, "--db", str(tmp_path / "new.db"), "--key-file", str(wrong))
    assert done.returncode == 2, done.stderr
    assert f"Error: {url} was encrypted with another key than the one given" in done.stderr
    assert ".fetched" not in done.stderr and ".dagvault-fetch" not in done.stderr
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_a_local_encrypted_backup_without_a_key_asks_for_the_key(
    cli: CliRunner,
    encrypted: tuple[Path, Path],
    odd_ledger: Path,
    tmp_path: Path,
    command: str,
) -> None:
    _, target = encrypted
    [data] = target.glob("*.enc")
    before = content_digest(odd_ledger)
    args = ["--db", str(odd_ledger)] if command == "restore" else []
    done = cli(command, str(data), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Error: {data} is encrypted: it needs the encryption key" in done.stderr
    assert "DAGVAULT_ENCRYPTION_KEY_FILE" in done.stderr and "DAGVAULT_ENCRYPTION_KEY " in (
        done.stderr
    )
    assert "not a SQLite database" not in done.stdout + done.stderr
    assert content_digest(odd_ledger) == before


def test_a_local_encrypted_backup_restores_with_its_key(
    cli: CliRunner, encrypted: tuple[Path, Path], odd_ledger: Path, tmp_path: Path
) -> None:
    key, target = encrypted
    [data] = target.glob("*.enc")
    config = write_odd_ledger_config(tmp_path)
    restored = tmp_path / "restored.db"
    done = cli(
        "restore", str(data), "--db", str(restored), "--key-file", str(key), "--config", str(config)
    )
    assert done.returncode == 0, done.stderr
    assert content_digest(restored) == content_digest(odd_ledger)


# --- the API's start-up warning ----------------------------------------------------------


def test_the_api_warning_without_a_token_says_what_the_server_allows(
    prefect_api_url: str, tmp_path: Path
) -> None:
    import pwd

    from tests._api import api_server

    with api_server(tmp_path, prefect_api_url) as server, server.client() as http:
        log = server.log.read_text()
        # and a body that is not JSON is described, not "20: JSON decode error"
        answer = http.post(
            "/backup",
            content=b'{"description": "x",}',
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "Invalid request: body is not JSON: line 1, column 21: a trailing comma before '}'"
    )
    [warning] = [line for line in log.splitlines() if line.startswith("Warning: no ")]
    uid = os.geteuid()
    who = (
        f"only processes of user {pwd.getpwuid(uid).pw_name} (uid {uid}) and root may"
        if uid
        else "only root's processes may"
    )
    assert f"(loopback only); {who} back up, restore" in warning
    assert "Every local account may read" in warning
    assert "every local process may back up" not in warning  # what the README contradicted
    api_docs = (Path(__file__).parents[2] / "docs" / "http-api.md").read_text()
    assert "lets only processes of its own user (and root) change anything" in api_docs
    assert "Reads stay open to local processes" in api_docs


# --- ❌ Backup creation failed: for every failure of a backup ----------------------------


@pytest.fixture
def immutable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory no one may write into, root included (chattr +i): permission denied
    while this suite runs as root."""
    chattr = shutil.which("chattr")
    directory = tmp_path / "immutable"
    directory.mkdir()
    if chattr is None or subprocess.run([chattr, "+i", str(directory)]).returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("needs chattr +i (the filesystem refused) to deny root")
        directory.chmod(0o555)
    try:
        yield directory
    finally:
        if chattr is not None:
            subprocess.run([chattr, "-i", str(directory)], check=False)
        directory.chmod(0o755)


def test_permission_denied_on_the_backup_dir_logs_the_cross_line(
    cli: CliRunner, odd_ledger: Path, immutable_dir: Path, tmp_path: Path
) -> None:
    config = write_odd_ledger_config(tmp_path)
    done = cli("backup", "--config", str(config), "--db", str(odd_ledger),
               "--backup-dir", str(immutable_dir / "backups"))  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 6, output
    [line] = [line for line in output.splitlines() if CROSS in line]
    assert "Permission denied" in line and str(immutable_dir / "backups") in line
    assert "Error: " in done.stderr and "Try: " in done.stderr
    assert list(immutable_dir.iterdir()) == []


def test_other_backup_failures_log_the_cross_line_once(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path
) -> None:
    config = write_odd_ledger_config(tmp_path)
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("x")
    cases = {
        3: ["--db", str(tmp_path / "missing.db")],  # before the flow run starts
        6: ["--db", str(odd_ledger), "--backup-dir", str(a_file)],  # in the task
        2: ["--db", str(odd_ledger), "--type", "incremental", "--backup-dir", "s3://b/p"],
    }
    for code, args in cases.items():
        done = cli("backup", "--config", str(config), *args)
        output = done.stdout + done.stderr
        assert done.returncode == code, output
        assert len([line for line in output.splitlines() if CROSS in line]) == 1, output
