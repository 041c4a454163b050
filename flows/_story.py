"""What an operator reads in the Prefect UI about a flow run: its name, its tags, the
resolved database and backup directory as its first log line, progress artifacts while it
works, and one summary artifact at its end (docs/prefect-ui.md).

Names come from the run's parameters (``flow_run_name``), before anything can fail; tags
``dagvault``, the operation and ``db:<name>`` are added once the settings are resolved, so a
run started by the CLI, the API or a deployment's schedule carries the same ones (the
origin tag, ``cli`` / ``api`` / ``schedule``, comes from the launcher or the deployment).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import tags as run_tags
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from dagvault import progress
from dagvault.backup import backup_kind
from dagvault.config import Settings, load_settings
from dagvault.errors import DagvaultError
from tasks._artifacts import Progress, create_markdown_artifact
from tasks._runtime import artifact_key
from tasks._story import cell, step

Namer = Callable[[dict[str, Any], str], str]  # (the run's parameters, database) -> name


def database_of(parameters: dict[str, Any]) -> str:
    """The name of the ledger a run works on, from its parameters or, for a deployment's run
    (no settings handed down), its configuration; "" when that cannot be read."""
    if parameters.get("database_path"):
        return Path(str(parameters["database_path"])).stem
    given = parameters.get("settings")
    if isinstance(given, Settings):
        return given.database_path.stem
    try:
        return load_settings(config_file=parameters.get("config_file")).database_path.stem
    except DagvaultError:  # the run reports its broken configuration itself
        return ""


def run_name(operation: str, namer: Namer | None = None) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``namer``'s name, or ``<operation>-<database>``. It
    never raises: a name is not worth failing a run for (Prefect would crash it)."""

    def name() -> str:
        context = FlowRunContext.get()
        parameters = dict(context.parameters) if context and context.parameters else {}
        try:
            database = database_of(parameters)
            if namer is not None:
                return namer(parameters, database)
        except Exception:
            return operation
        return "-".join(p for p in (operation, database) if p)

    return name


def backup_name(parameters: dict[str, Any], database: str) -> str:
    try:
        kind = backup_kind(str(parameters.get("backup_type") or "full")).lower()
    except DagvaultError:
        kind = str(parameters.get("backup_type"))
    return "-".join(p for p in ("backup", database, kind) if p)


class Story:
    """One run's facts for its summary artifact, in the order they were noted."""

    def __init__(self, operation: str, settings: Settings) -> None:
        self.operation = operation
        self.database = settings.database_path.stem
        self.facts: dict[str, Any] = {
            "database": str(settings.database_path),
            "backup directory": str(settings.backup_dir),
        }
        self.started = time.monotonic()

    def note(self, **facts: Any) -> None:
        """Facts for the summary: ``note(backup=path, file_size=1234)``; a name's
        underscores become spaces, and its value is rendered by ``cell`` (a size, a
        duration, JSON)."""
        self.facts.update(facts)

    def markdown(self, error: BaseException | None) -> str:
        verdict = f"❌ {self.operation} failed" if error else f"✅ {self.operation} completed"
        lines = [f"### {verdict}: {self.database}", "", "| | |", "|---|---|"]
        facts = {**self.facts, "duration_seconds": round(time.monotonic() - self.started, 3)}
        for name, value in facts.items():
            text = cell(value, name).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {name.replace('_', ' ')} | {text} |")
        if error is not None:
            lines += ["", f"**Error:** {getattr(error, 'message', str(error))}"]
            if hint := getattr(error, "hint", ""):
                lines.append(f"**Try:** {hint}")
        return "\n".join(lines)


@contextlib.contextmanager
def told(operation: str, settings: Settings) -> Iterator[Story]:
    """Tell the run's story: tag it, log where it works, report progress, and publish its
    summary artifact when it ends, failed or not."""
    story = Story(operation, settings)
    # The run's own tags too (a deployment's "schedule"): its task runs get the same.
    tags = _add_tags(["dagvault", operation, f"db:{story.database}"])
    step(
        "%s of %s: database %s, backup directory %s",
        operation,
        story.database,
        settings.database_path,
        settings.backup_dir,
    )
    try:
        with run_tags(*tags), progress.listening(ProgressArtifacts(operation, story.database)):
            yield story
    except BaseException as error:
        _publish(story, error)
        raise
    _publish(story, None)


def _add_tags(tags: list[str]) -> list[str]:
    """Add ``tags`` to the flow run's; return them all."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return tags
    run = context.flow_run
    merged = sorted({*run.tags, *tags})
    if merged != sorted(run.tags):
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=merged)
        run.tags = merged
    return merged


def _flow_run_id() -> UUID | None:
    context = FlowRunContext.get()
    return context.flow_run.id if context and context.flow_run else None


def _publish(story: Story, error: BaseException | None) -> None:
    create_markdown_artifact(
        key=artifact_key("summary", story.operation, story.database),
        markdown=story.markdown(error),
        description=f"{story.operation} of {story.database}: the run's summary",
    )


class ProgressArtifacts:
    """A progress artifact per stage (backup, restore, export…) of a run, as the CLI draws a
    bar: created at the stage's first report, updated on each whole percent, at most once a
    second (each update is a request to the Prefect API), and always at 100 %."""

    MIN_INTERVAL_SECONDS = 1.0

    def __init__(self, operation: str, database: str) -> None:
        self.operation, self.database = operation, database
        self.run = _flow_run_id()
        self.stages: dict[str, tuple[Progress, int, float]] = {}  # artifact, percent, when

    def __call__(self, stage: str, done: int, total: int) -> None:
        if _flow_run_id() != self.run:
            return  # another run's step: a fleet backs up several ledgers at once
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        description = f"{stage} of {self.database}: {done:,} of {total:,}"
        now = time.monotonic()
        if stage not in self.stages:
            artifact = Progress(artifact_key("progress", stage, self.database))
            artifact.show(float(percent), description)
            self.stages[stage] = (artifact, percent, now)
            return
        artifact, shown, when = self.stages[stage]
        due = now - when >= self.MIN_INTERVAL_SECONDS
        if (percent == 100 and shown < 100) or (percent > shown and due):
            artifact.show(float(percent), description)
            self.stages[stage] = (artifact, percent, now)
