"""Running declared checks with Great Expectations (GX Core 1.x), imported lazily.

Checks are plain data (``Asset`` + ``Expect``); this module turns them into GX suites,
validation definitions and one checkpoint, then builds the Data Docs site under
``<reports_dir>/data_docs`` once per run (incrementally: this run's pages and the index),
after the gate's verdict where the process answers early (the node service:
``dagvault.afterwards``); the verdict names the index either way.
Validation results are kept as JSON under ``<reports_dir>/validations`` so the Data Docs
index lists earlier runs too. Without a reports_dir nothing is written.

GX costs several seconds to import, so nothing here imports it at module level.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dagvault import afterwards
from dagvault.db import quote_identifier
from dagvault.fsio import ensure_dir
from dagvault.quality.report import Outcome

SITE_NAME = "dagvault_site"
# SUMMARY keeps unexpected counts and at most this many example values: the result
# (and the .meta it is copied into) stays small whatever the table size.
EXAMPLES = 5
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
# The first pass asks for no examples: fetching them is one more query per column check,
# and when the check found nothing that query scans the whole table for nothing (three of
# the six scans of a 1 GB ledger). Only a suite in which a check found unexpected values
# is run again, with examples (see _run).
COUNTS_ONLY = {**RESULT_FORMAT, "partial_unexpected_count": 0}
INDEX_RESULTS_LIMIT = 500  # validation runs listed on the Data Docs index page
_CHECK_KEY = "dagvault_check"
_frozen = False  # gc.freeze() ran after GX's import (once per process)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expect:
    check: str  # dagvault's name of the check
    gx_type: str  # class name in great_expectations.expectations
    kwargs: dict[str, Any]
    table: str | None = None
    column: str | None = None
    describe: str = ""  # shown next to the observed value


@dataclass(frozen=True)
class Asset:
    name: str  # the GX asset name and the last part of the suite name
    expectations: list[Expect] = field(default_factory=list)
    table: str | None = None  # a table asset…
    query: str | None = None  # …or a query asset (SQL sources only)


def data_docs_dir(reports_dir: Path) -> Path:
    return reports_dir.absolute() / "data_docs"


def _import_gx() -> Any:
    # GX would otherwise phone home on first use; a backup tool must not.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    global _frozen
    if not _frozen:
        # GX and its dependencies leave ~300k long-lived objects that every full garbage
        # collection walks again: one falling inside a gate (which allocates many objects)
        # paused it for up to 0.7 s in a profile. Freezing moves what exists now (modules,
        # classes, caches: never garbage) out of the collector's way.
        gc.freeze()
        _frozen = True
    return gx


def load() -> None:
    """Import GX now rather than at the first gate (the node service warms up with it)."""
    _import_gx()


def _context(gx: Any, reports_dir: Path | None) -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    progress = ProgressBarsConfig(globally=False, metric_calculations=False)
    if reports_dir is None:
        return gx.get_context(
            project_config=DataContextConfig(
                store_backend_defaults=defaults,
                data_docs_sites={},
                analytics_enabled=False,
                progress_bars=progress,
            ),
            mode="ephemeral",
        )
    root = ensure_dir(reports_dir.absolute())
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(root / "validations"),
        },
    }
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(data_docs_dir(root)),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": INDEX_RESULTS_LIMIT,
        },
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={SITE_NAME: site},
        analytics_enabled=False,
        # GX draws tqdm bars on stderr per validation: they would litter the CLI output.
        progress_bars=progress,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _safe(name: str) -> str:
    """Suite names become directory names in the Data Docs site."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "unnamed"


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a value GX observed."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.hex()[:32]
    return str(value)


def _outcome(spec: Expect, result: Any) -> Outcome:
    info = result.exception_info or {}
    if isinstance(info, dict) and "raised_exception" not in info:
        # Keyed by metric: the first message says why GX could not evaluate the check.
        info = next(iter(info.values()), {}) if info else {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message") or "unknown error").splitlines()[0]
        return Outcome(
            spec.check,
            spec.gx_type,
            spec.table,
            spec.column,
            False,
            None,
            f"GX could not evaluate it: {message}",
        )
    found = dict(result.result or {})
    if "observed_value" in found:
        observed = _plain(found["observed_value"])
        details = spec.describe
    else:
        observed = _plain(found.get("unexpected_count", 0))
        total = found.get("element_count")
        examples = [_plain(v) for v in found.get("partial_unexpected_list") or []]
        details = f"{observed} of {total} rows unexpected" if total is not None else ""
        if examples and not result.success:
            details += f", e.g. {examples}"
        if spec.describe:
            details = f"{spec.describe}; {details}" if details else spec.describe
    return Outcome(
        spec.check, spec.gx_type, spec.table, spec.column, bool(result.success), observed, details
    )


def _run(
    gx: Any,
    context: Any,
    pairs: list[tuple[Asset, Any]],
    *,
    suite_prefix: str,
    run_name: str,
    batch_parameters: dict[str, Any] | None = None,
    data_docs: bool = True,
) -> list[Outcome]:
    from great_expectations.core.run_identifier import RunIdentifier

    suite_prefix = _safe(suite_prefix)
    specs: dict[str, Expect] = {}
    definitions = []
    for asset, batch_definition in pairs:
        suite = context.suites.add(gx.ExpectationSuite(name=f"{suite_prefix}.{_safe(asset.name)}"))
        for spec in asset.expectations:
            key = str(len(specs))
            specs[key] = spec
            expectation = getattr(gx.expectations, spec.gx_type)(
                **spec.kwargs, meta={_CHECK_KEY: key}
            )
            suite.add_expectation(expectation)
        definitions.append(
            context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=f"{suite_prefix}.{_safe(asset.name)}", data=batch_definition, suite=suite
                )
            )
        )
    # GX's stores refuse keys holding '/' or '\\'; a file may be named with a backslash.
    run_id = RunIdentifier(run_name=run_name.replace("\\", "_").replace("/", "_"))
    run_results = _checkpoint_run(
        gx, context, suite_prefix, definitions, COUNTS_ONLY, batch_parameters, run_id
    )
    flagged = [d for d in definitions if _found_unexpected(run_results, d.suite.name)]
    if flagged:  # quote examples of what a check found: run those suites again, with them
        for result_id, validation in list(run_results.items()):
            if validation.suite_name in {d.suite.name for d in flagged}:
                context.validation_results_store.remove_key(result_id)
                del run_results[result_id]
        run_results.update(
            _checkpoint_run(
                gx,
                context,
                f"{suite_prefix}.examples",
                flagged,
                RESULT_FORMAT,
                batch_parameters,
                run_id,
            )
        )
    if data_docs:
        # Only shown, never relied on: the verdict need not wait for its pages.
        afterwards.later(
            f"Data Docs of {run_id.run_name}", lambda: _build_data_docs(context, run_results)
        )
    found: dict[int, Outcome] = {}
    for validation in run_results.values():
        for expectation_result in validation.results:
            key = (expectation_result.expectation_config.meta or {})[_CHECK_KEY]
            found[int(key)] = _outcome(specs[key], expectation_result)
    return [found[k] for k in sorted(found)]  # in the order the checks were declared


def _checkpoint_run(
    gx: Any,
    context: Any,
    name: str,
    definitions: list[Any],
    result_format: dict[str, Any],
    batch_parameters: dict[str, Any] | None,
    run_id: Any,
) -> dict[Any, Any]:
    """Run ``definitions`` as one checkpoint; its results by validation result id."""
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=name, validation_definitions=definitions, result_format=result_format)
    )
    result = checkpoint.run(batch_parameters=batch_parameters, run_id=run_id)
    return dict(result.run_results)


def _found_unexpected(run_results: dict[Any, Any], suite_name: str) -> bool:
    """Whether a check of the suite found unexpected values (which it then quotes)."""
    return any(
        (r.result or {}).get("unexpected_count")
        for v in run_results.values()
        if v.suite_name == suite_name
        for r in v.results
    )


def _build_data_docs(context: Any, run_results: dict[Any, Any]) -> None:
    """One incremental Data Docs build for the whole run: the pages of this run's results
    and suites, then the index once. (GX's UpdateDataDocsAction builds once per validation
    result, index included, and recompiles its templates each time: five times the work for
    a five-suite gate, most of the gate's wall time on a small ledger.)"""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    identifiers: list[Any] = []
    for result_id, validation in run_results.items():
        identifiers += [result_id, ExpectationSuiteIdentifier(name=validation.suite_name)]
    context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=identifiers)


def _index(reports_dir: Path | None, built: bool) -> str | None:
    """The Data Docs index, when there is one or this run builds it (maybe after its
    verdict: the link is given before the page is written)."""
    if reports_dir is None:
        return None
    index = data_docs_dir(reports_dir) / "index.html"
    return str(index) if built or index.is_file() else None


def sqlite_url(path: Path) -> str:
    """Read-only SQLAlchemy URL: checking a backup must never write to it.

    The path is percent-encoded twice, because it is decoded twice: SQLAlchemy unquotes the
    URL's database part, then SQLite decodes its ``file:`` URI. Encoded once, a directory
    named ``%2e%2e`` was read as ``..``: the gate checked another file than the backup."""
    return f"sqlite:///file:{quote(quote(str(path.absolute())))}?mode=ro&uri=true"


def run_on_sqlite(
    database: Path,
    assets: list[Asset],
    *,
    suite_prefix: str,
    run_name: str,
    reports_dir: Path | None,
) -> tuple[list[Outcome], str | None]:
    """Validate ``assets`` (tables or queries) where the data is: in SQLite, by SQL."""
    if not assets:  # a database without tables: nothing for GX to do
        return [], _index(reports_dir, built=False)
    gx = _import_gx()
    context = _context(gx, reports_dir)
    source = context.data_sources.add_sqlite(
        _safe(suite_prefix), connection_string=sqlite_url(database)
    )
    try:
        pairs = []
        for asset in assets:
            if asset.table is not None:
                data = source.add_table_asset(asset.name, table_name=quote_identifier(asset.table))
            else:
                data = source.add_query_asset(asset.name, query=asset.query)
            pairs.append((asset, data.add_batch_definition_whole_table("whole")))
        outcomes = _run(
            gx,
            context,
            pairs,
            suite_prefix=suite_prefix,
            run_name=run_name,
            data_docs=reports_dir is not None,
        )
    finally:
        source.get_engine().dispose()  # the file may be a temp image, removed next
    return outcomes, _index(reports_dir, built=True)


def run_on_dataframe(
    frame: Any, asset: Asset, *, suite_prefix: str, run_name: str, reports_dir: Path | None
) -> tuple[list[Outcome], str | None]:
    """Validate a small pandas DataFrame (a table of counts, never the data itself)."""
    gx = _import_gx()
    context = _context(gx, reports_dir)
    source = context.data_sources.add_pandas(_safe(suite_prefix))
    data = source.add_dataframe_asset(asset.name)
    pairs = [(asset, data.add_batch_definition_whole_dataframe("whole"))]
    outcomes = _run(
        gx,
        context,
        pairs,
        suite_prefix=suite_prefix,
        run_name=run_name,
        batch_parameters={"dataframe": frame},
        data_docs=reports_dir is not None,
    )
    return outcomes, _index(reports_dir, built=True)
