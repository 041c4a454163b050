"""Where POST /backup/export writes (dagvault_api.export_paths), on real directories: the
HTTP round trips are in test_api.py; these are the cases a request rarely produces."""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from pathlib import Path

from dagvault_api.export_paths import export_prefix, fresh_export


def test_a_folder_gets_exports_inside_and_a_dataset_only_siblings(tmp_path: Path) -> None:
    exports = Path("exports")
    (tmp_path / "exports" / "folder").mkdir(parents=True)
    dataset = tmp_path / "exports" / "ledger_1"
    dataset.mkdir()
    (dataset / "manifest.json").write_text("{}")
    reserved = tmp_path / "exports" / "ledger_2"  # an export still being written
    reserved.mkdir()
    (tmp_path / "exports" / f".ledger_2.{os.getpid()}.tmp").mkdir()

    def prefix(shown: Path, fmt: str = "csv", root: bool = False) -> Path:
        return export_prefix(shown, tmp_path / shown, fmt, "data/node.db", root=root)

    assert prefix(exports, root=True) == exports / "node"
    assert prefix(Path("absent"), root=True) == Path("absent/node")  # EXPORT_DIR not made yet
    assert prefix(exports / "folder") == exports / "folder" / "node"
    assert prefix(exports / "ledger_1") == exports / "ledger_1"
    assert prefix(exports / "ledger_2") == exports / "ledger_2"
    assert prefix(exports / "new") == exports / "new"
    assert prefix(exports / "dump.sql", "sql") == exports / "dump"
    assert prefix(exports / "dump.sql", "csv") == exports / "dump.sql"


def test_names_in_flight_and_on_disk_are_never_reused(tmp_path: Path) -> None:
    prefix = Path("exports/we{i}rd")
    (tmp_path / "exports").mkdir()
    with ExitStack() as held:
        names = [held.enter_context(fresh_export(prefix, "sql", tmp_path)) for _ in range(3)]
        (tmp_path / names[0]).write_text("")
        later = held.enter_context(fresh_export(prefix, "json", tmp_path))
    assert len({*names, later}) == 4
    for name in [*names, later]:
        assert name.parent == Path("exports")
        assert re.fullmatch(r"we\{i\}rd_\d{10}(_\d+)?(\.sql)?", name.name), name
    with fresh_export(prefix, "sql", tmp_path) as again:  # released, but names[0] exists
        assert again != names[0]
