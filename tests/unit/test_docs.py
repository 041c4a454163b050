"""docs/cli.md and docs/configuration.md's settings table are what the code says today
(regenerate them with `make docs`)."""

from __future__ import annotations

import re

import pytest
from _helpers import cli_subcommands

from dagvault import config
from dagvault.errors import EXIT_CODES
from dagvault_cli import settings_reference
from dagvault_cli.reference import PAGE, render


def test_the_cli_reference_is_generated_from_the_current_parser() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), "docs/cli.md is stale: run `make docs`"


def test_the_cli_reference_documents_every_command_and_flag() -> None:
    page = render()
    for name in cli_subcommands():
        assert f"## dagvault {name}\n" in page
    for flag in ("--allow-decrease", "--keep-daily", "--replicate-to", "--no-pre-restore-backup"):
        assert f"`{flag}`" in page


def test_the_settings_table_is_generated_from_the_current_code() -> None:
    page = settings_reference.PAGE.read_text(encoding="utf-8")
    assert page == settings_reference.render(page), "docs/configuration.md is stale: `make docs`"


def test_the_settings_table_joins_each_setting_with_its_flag_and_api_field() -> None:
    """Introspection found the flags and request fields (not just the settings). The
    request models' names are left free: they may be renamed or moved."""
    table = settings_reference.render(settings_reference.MARKER)
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in table.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(config._SPECS)
    for setting, names in {
        "database_path": (
            "`DATABASE_PATH`",
            "`database.path`",
            "`--db` (backup,",
            "`./blockchain.db`",
        ),
        "compression_enabled": ("`--compress` (backup)", "`compress` (", "`false`"),
        "retention_count": ("`--keep` (cleanup)", "`keep` (", "`30`"),
        "create_pre_restore_backup": (
            "`--no-pre-restore-backup` (restore)",
            "`--no-pre-import-backup` (import-sql)",
            "`create_pre_restore_backup` (",
            "`create_pre_import_backup` (",
        ),
        "default_export_format": ("`--format` (export)", "`format` (", "`sql`"),
        "allow_decrease": ("`--allow-decrease` (backup, verify)", "`allow_decrease` ("),
        "restore_verify_checksum": ("`--no-verify` (restore)",),
    }.items():
        for name in names:
            assert name in rows[setting], (setting, name)
    assert "(backup" not in rows["restore_verify_checksum"]  # backup's --no-verify is another


def test_the_hand_written_part_of_the_configuration_page_is_kept() -> None:
    page = f"# Configuration\n\nHand-written prose.\n\n{settings_reference.MARKER}\n\nold table\n"
    rendered = settings_reference.render(page)
    assert rendered.startswith("# Configuration\n\nHand-written prose.\n\n")
    assert "old table" not in rendered and "| `backup_dir` |" in rendered
    with pytest.raises(ValueError, match="marker"):
        settings_reference.render("# Configuration without the marker\n")


def test_a_renamed_flag_or_field_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """An alias the parser or the models no longer have must not vanish from the page."""
    monkeypatch.setitem(settings_reference.FLAG_ALIASES, "database_path", ("database",))
    with pytest.raises(KeyError, match="no flag with dest 'database'"):
        settings_reference.rows()
    monkeypatch.setitem(settings_reference.API_ALIASES, "compression_enabled", ("zstd",))
    monkeypatch.setitem(settings_reference.FLAG_ALIASES, "database_path", ("db",))
    with pytest.raises(KeyError, match="no request model has a field 'zstd'"):
        settings_reference.rows()


def test_every_setting_has_a_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(settings_reference.MEANINGS, "staging_dir")
    with pytest.raises(KeyError, match="staging_dir"):
        settings_reference.rows()


def test_the_command_guide_lists_the_exit_codes_the_cli_uses() -> None:
    """docs/commands.md's hand-written table must not drift from the codes the CLI returns."""
    guide = (PAGE.parent / "commands.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Exit codes") :]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    assert rows == {str(code): text for code, text in EXIT_CODES.items()}
