"""The API's OpenAPI document types every operation's ``data.result`` with the operation's
result model (a client generator, e.g. openapi-generator or datamodel-code-generator, must not
get ``Any``): the same model `--json` prints (dagvault.operations.registry)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from dagvault.config import load_settings
from dagvault.operations.registry import OPERATIONS
from dagvault_api.app import create_app
from dagvault_api.service import ApiConfig

RESULTS = {
    "/backup": "backup",
    "/backup/verify": "verify",
    "/backup/restore": "restore",
    "/backup/export": "export",
    "/backup/import": "import-sql",
    "/backup/cleanup": "cleanup",
}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("api")
    config = ApiConfig(load_settings(environ={}), None, base, "t" * 32, False, base / "audit")
    with warnings.catch_warnings():
        # FastAPI's schema of a body parameter sets an alias pydantic ignores: not ours.
        warnings.simplefilter("ignore")
        return create_app(config).openapi()


@pytest.mark.parametrize("path", sorted(RESULTS))
def test_each_operations_result_has_its_model(openapi: dict[str, Any], path: str) -> None:
    schemas = openapi["components"]["schemas"]
    answer = openapi["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    envelope = schemas[answer["schema"]["$ref"].rsplit("/", 1)[1]]
    data = envelope["properties"]["data"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    result = schemas[data]["properties"]["result"]
    assert result == {"$ref": f"#/components/schemas/{OPERATIONS[RESULTS[path]].result.__name__}"}
