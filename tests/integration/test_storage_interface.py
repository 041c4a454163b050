"""One storage interface: a backup directory and a storage target answer the same
questions (``backup_store``, ``stored_backup``), and nothing outside ``dagvault/storage``
asks whether a location is a URL. Real files throughout: the odd ledger, its backups, a
``file://`` target holding real uploads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _helpers import (
    ODD_LEDGER_CONFIG,
    add_odd_transactions,
    content_digest,
    write_odd_ledger_config,
)
from conftest import PROJECT, CliRunner

from dagvault import crypto
from dagvault.backup import create_backup
from dagvault.errors import BackupNotFound, ConfigError, EncryptionKeyError
from dagvault.ledger import LedgerProfile
from dagvault.storage import canonical, open_store, parent_of
from dagvault.storage.backup_store import backup_store, stored_backup
from dagvault.storage.offsite.replicate import replicate

ROOT = PROJECT
PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


def test_only_the_storage_package_asks_whether_a_location_is_a_url() -> None:
    asks = re.compile(r"\bis_url\(")
    storage = ROOT / "dagvault" / "storage"
    scanned, inside, outside = 0, 0, []
    for source in ROOT.rglob("*.py"):
        relative = source.relative_to(ROOT)
        if relative.parts[0].startswith(".") or source == Path(__file__).resolve():
            continue  # .venv, .tools, …; this test names what it looks for
        scanned += 1
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if asks.search(line):
                if source.is_relative_to(storage):
                    inside += 1
                else:
                    outside.append(f"{relative}:{number}: {line.strip()}")
    assert scanned > 100 and inside > 0  # the scan saw the tree, and the function is used
    assert outside == [], "ask the store instead (dagvault.storage.backup_store):\n" + "\n".join(
        outside
    )


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    path = tmp_path / "backup.key"
    crypto.generate_key_file(path)
    return path


@pytest.fixture
def backups(odd_ledger: Path, tmp_path: Path, key_file: Path) -> Path:
    """A backup directory of the odd ledger: a full backup and an incremental on it, taken
    with the key (authenticated), as on a node that encrypts its copies with it."""
    directory, key = tmp_path / "backups", crypto.load_key(key_file)
    create_backup(odd_ledger, directory, profile=PROFILE, key=key)
    add_odd_transactions(odd_ledger, 5)
    create_backup(odd_ledger, directory, profile=PROFILE, kind="incremental", key=key)
    return directory


def test_a_directory_and_a_file_target_answer_alike(
    backups: Path, odd_ledger: Path, tmp_path: Path, key_file: Path
) -> None:
    target = (tmp_path / "second-disk").as_uri()
    replicate(backups, open_store(target), None)
    local, remote = backup_store(backups), backup_store(target)
    assert (local.is_local, local.local_path) == (True, backups)
    assert (remote.is_local, remote.local_path) == (False, None)

    def shape(entries: list) -> list[tuple[str, str, int]]:
        return [(e.path.name, e.info.backup_type, e.info.total_transactions) for e in entries]

    assert shape(local.backups()) == shape(remote.backups())
    assert [e[1] for e in shape(local.backups())] == ["Incremental", "Full"]
    assert shape(local.listing(odd_ledger, 1)[0]) == shape(remote.listing(None, 1)[0])
    assert remote.listing(None, None)[1] == {}  # no object that is not a whole backup

    newest = local.backups()[0].path.name
    for place in (str(backups / newest), f"{target}/{newest}"):
        scratch = tmp_path / "scratch.db"
        result = stored_backup(place).restore(scratch, key_file=key_file, profile=PROFILE)
        assert result.success
        assert content_digest(scratch) == content_digest(odd_ledger)
        scratch.unlink()

    # Cleanup plans alike on both: keeping one keeps the incremental and the full it needs.
    for store in (local, remote):
        outcome = store.cleanup(1, dry_run=True, pre_restore=None).to_json()
        assert outcome["removed_backups"] == 0 and outcome["kept"] == 2


def test_an_encrypted_object_in_a_directory_is_read_as_at_a_file_target(
    backups: Path, tmp_path: Path, key_file: Path
) -> None:
    copies = tmp_path / "copies"
    replicate(backups, open_store(copies.as_uri()), crypto.load_key(key_file))
    full = next(backups.glob("*.db"))

    plain = stored_backup(str(full))
    assert (plain.is_local, plain.local_path) == (True, full)
    plain.precheck(None)

    sealed = stored_backup(str(copies / f"{full.name}.enc"))
    assert (sealed.is_local, sealed.local_path) == (False, None)
    assert sealed.location == f"file://{copies / full.name}.enc"
    with pytest.raises(EncryptionKeyError, match="is encrypted"):
        sealed.precheck(None)
    sealed.precheck(key_file)
    staging = tmp_path / "staging"
    with sealed.local_copy(key_file=key_file, staging=staging) as local:
        assert local.read_bytes() == full.read_bytes()  # fetched, checked, decrypted
    assert list(staging.iterdir()) == []
    report = sealed.verify(
        quick=True, checksum=True, recheck_quality=False, key_file=key_file, staging=staging
    )
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("flag", "refusal"),
    # --sign-legacy signs a copy at a target, a local .enc included (see test_authenticated_reads)
    [("--quality", "--quality runs on local backups only")],
)
def test_an_encrypted_copy_in_a_directory_is_no_local_backup_to_gate(
    cli: CliRunner, backups: Path, tmp_path: Path, key_file: Path, flag: str, refusal: str
) -> None:
    copies = tmp_path / "copies"
    replicate(backups, open_store(copies.as_uri()), crypto.load_key(key_file))
    [sealed] = copies.glob("*.db.enc")
    before = {p.name: p.read_bytes() for p in copies.iterdir()}
    config = write_odd_ledger_config(tmp_path)
    done = cli("verify", str(sealed), flag, "--key-file", str(key_file), "--config", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Error: {refusal}" in done.stderr and "Try:" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert {p.name: p.read_bytes() for p in copies.iterdir()} == before


def test_a_missing_local_backup_fails_before_a_run_and_a_target_is_asked_by_the_run(
    tmp_path: Path,
) -> None:
    with pytest.raises(BackupNotFound, match="does not exist"):
        stored_backup(str(tmp_path / "nope.db")).precheck(None)
    # No network, no backend package: a target is opened only when it is used.
    far = stored_backup("nosuchproto://bucket/node-1/blockchain_1704067200.db")
    far.precheck(None)
    assert not far.is_local
    store = backup_store("nosuchproto://bucket/node-1")
    assert store.local_path is None
    with pytest.raises(ConfigError, match="not available"):
        store.backups()
    with pytest.raises(ConfigError, match="names no backup"):
        stored_backup("s3://bucket")


def test_a_new_backup_is_written_in_the_directory_or_staged_for_a_target(
    tmp_path: Path,
) -> None:
    directory, root = tmp_path / "backups", tmp_path / "staging"
    with backup_store(directory).writing_dir(root) as where:
        assert where == directory
    with (
        pytest.raises(RuntimeError),
        backup_store("s3://bucket/node-1").writing_dir(root) as where,
    ):
        assert where.parent == root and where.is_dir()
        (where / "half-written.db").write_bytes(b"x")
        raise RuntimeError("the backup failed")
    assert list(root.iterdir()) == []  # removed even after a failure


def test_a_place_has_one_name_however_it_is_written(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "backups")
    resolved = str((tmp_path / "backups").resolve())
    assert canonical(tmp_path / "x" / ".." / "backups") == resolved
    assert canonical(str(tmp_path / "link")) == resolved
    assert canonical("s3://bucket/node-1") == "s3://bucket/node-1"
    assert parent_of("s3://bucket/node-1/b.db") == "s3://bucket/node-1"
    assert parent_of("backups/b.db") == Path("backups")
