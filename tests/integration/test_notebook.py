"""notebooks/ledger_analysis.ipynb runs headless (nbclient, a real ipykernel) on a real export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import CellExecutionError

from dagvault.export import export_database
from dagvault.sample import create_sample_ledger

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "ledger_analysis.ipynb"
KERNEL = "python3"


@pytest.fixture(scope="module")
def parquet_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Parquet export of a 2000-transaction sample ledger."""
    root = tmp_path_factory.mktemp("notebook")
    ledger = root / "ledger.db"
    create_sample_ledger(ledger, 2000, seed=11, nodes=24)
    out = root / "exports" / "ledger_export"
    export_database("parquet", database=ledger, out=out)
    return out


@pytest.fixture(autouse=True)
def python3_kernel(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ipykernel provides the python3 kernel spec of this interpreter; register one if the
    environment lacks it (e.g. a venv without share/jupyter)."""
    if KERNEL in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    install(user=False, prefix=str(prefix), kernel_name=KERNEL)
    paths = [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in paths if p))


def execute(nb: Any, cwd: Path) -> Any:
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def outputs(nb: Any) -> list[Any]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def stream_text(nb: Any) -> str:
    return "".join(o.text for o in outputs(nb) if o.output_type == "stream")


def first_cells(count: int) -> Any:
    """The notebook cut after its ``count``-th code cell (imports, finding the export, ...)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    kept, seen = [], 0
    for cell in nb.cells:
        if seen == count:
            break
        kept.append(cell)
        seen += cell.cell_type == "code"
    nb.cells = kept
    return nb


def test_the_notebook_runs_top_to_bottom_and_draws_its_charts(
    parquet_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGVAULT_EXPORT_DIR", str(parquet_export))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), tmp_path)

    assert not [o for o in outputs(nb) if o.output_type == "error"]
    images = [
        o
        for o in outputs(nb)
        if o.output_type in {"display_data", "execute_result"} and "image/png" in o.data
    ]
    assert len(images) >= 4
    text = stream_text(nb)
    assert f"export:      {parquet_export.resolve()}" in text
    assert "all files match the manifest" in text
    assert not list(tmp_path.iterdir())  # the notebook writes nothing where it runs


def test_without_the_variable_it_takes_the_newest_export_and_checks_it(
    parquet_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGVAULT_EXPORT_DIR", raising=False)
    exports = tmp_path / "exports"
    exports.mkdir()
    older, newer, unfinished = exports / "old", exports / "new", exports / "unfinished"
    manifest = json.loads((parquet_export / "manifest.json").read_text())
    for directory in (older, newer):
        directory.mkdir()
        for entry in manifest["tables"].values():
            (directory / entry["file"]).symlink_to(parquet_export / entry["file"])
    (older / "manifest.json").write_text(json.dumps(manifest))
    os.utime(older / "manifest.json", (1_000_000_000, 1_000_000_000))
    # The newest complete export disagrees with its files: one row too many.
    manifest["tables"]["transactions"]["rows"] += 1
    (newer / "manifest.json").write_text(json.dumps(manifest))
    unfinished.mkdir()  # newest of all, but without manifest.json: not a complete export

    nb = first_cells(3)  # imports, finding the export, checking it against its manifest
    with pytest.raises(CellExecutionError, match="does not match its manifest"):
        execute(nb, tmp_path)
    assert f"export:      {newer.resolve()}" in stream_text(nb)
