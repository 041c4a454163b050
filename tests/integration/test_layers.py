"""The layers depend downwards only: the HTTP API never imports the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT


def _modules_loaded_by(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    return list(json.loads(proc.stdout.splitlines()[-1]))


def test_the_api_never_imports_the_cli() -> None:
    loaded = _modules_loaded_by(
        "import dagvault_api.app, dagvault_api.server, dagvault_api.routes\n"
        "import flows.launcher\n"
        "import importlib  # every flow the API can launch:\n"
        "for target in flows.launcher.FLOWS.values():\n"
        "    importlib.import_module(target.partition(':')[0])"
    )
    assert "dagvault_api.app" in loaded and "flows.backup" in loaded
    assert [name for name in loaded if name.split(".")[0] == "dagvault_cli"] == []


def test_no_module_of_the_api_imports_the_cli_even_lazily() -> None:
    """An import inside a function (as `serve` once had) counts too."""
    offenders = []
    for path in sorted((PROJECT / "dagvault_api").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dagvault_cli"]
    assert offenders == []


def test_the_core_never_imports_prefect_or_the_shells() -> None:
    import dagvault

    core = sorted(
        "dagvault." + ".".join(p.relative_to(Path(dagvault.__file__).parent).with_suffix("").parts)
        for p in Path(dagvault.__file__).parent.rglob("*.py")
        if p.name != "__init__.py"
    )
    imports = "\n".join(f"import {name}" for name in core)
    loaded = _modules_loaded_by(imports)
    shells = ("prefect", "dagvault_cli", "dagvault_api", "flows", "tasks", "fastapi")
    assert [name for name in loaded if name.split(".")[0] in shells] == []
