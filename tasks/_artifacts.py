"""A run's artifacts in the Prefect UI, published after the answer where it can be
(``dagvault.afterwards``): in the node service a handed-over command gets its result
without waiting for the artifacts' requests to the Prefect API; in a command's own process
they are published at once, as before.

The same calls as ``prefect.artifacts`` (``create_table_artifact`` …), bound to the run
that makes them: the flow and task run ids are read when the call is made, so an
artifact published after its run ended still belongs to it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    Artifact,
    LinkArtifact,
    MarkdownArtifact,
    ProgressArtifact,
    TableArtifact,
)
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.context import SyncClientContext
from prefect.utilities.context import get_task_and_flow_run_ids

from dagvault import afterwards


def _client() -> SyncPrefectClient:
    """The run's own client while it runs (a job published at once); after the run, whose
    client closed when it ended, a client of the job's own, with the run's settings (the
    job runs in a copy of the run's context: clearing it there touches nothing else)."""
    client: SyncPrefectClient = get_client(sync_client=True)
    if getattr(client, "_closed", False):
        SyncClientContext.__var__.set(None)
        client = get_client(sync_client=True)
    return client


def _publish(artifact: Artifact, into: list[UUID] | None = None) -> None:
    """Create ``artifact`` for the current run, after the answer; ``into`` receives its id
    (a progress artifact's later updates need it)."""
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    request = ArtifactCreate(
        type=artifact.type,
        key=artifact.key,
        description=artifact.description,
        data=artifact.format(_sync=True),  # type: ignore[call-arg]
        task_run_id=task_run_id,
        flow_run_id=flow_run_id,
    )

    def create() -> None:
        with _client() as client:
            created = client.create_artifact(artifact=request)
        if into is not None:
            into.append(created.id)

    afterwards.later(f"artifact {artifact.key or artifact.type}", create)


def create_table_artifact(
    table: dict[str, list[Any]] | list[dict[str, Any]] | list[list[Any]],
    key: str | None = None,
    description: str | None = None,
) -> None:
    _publish(TableArtifact(table=table, key=key, description=description))


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> None:
    _publish(MarkdownArtifact(markdown=markdown, key=key, description=description))


def create_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> None:
    _publish(LinkArtifact(link=link, link_text=link_text, key=key, description=description))


class Progress:
    """One progress artifact: created by ``show`` at its first call, then updated."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._id: list[UUID] = []  # filled by the creating job, read by the later ones
        self._created = False

    def show(self, percent: float, description: str) -> None:
        if not self._created:
            self._created = True
            _publish(
                ProgressArtifact(progress=percent, key=self.key, description=description),
                self._id,
            )
            return
        update = ArtifactUpdate(data=percent, description=description)

        def send() -> None:
            if self._id:  # not when its creation failed (that was a warning already)
                with _client() as client:
                    client.update_artifact(artifact_id=self._id[0], artifact=update)

        afterwards.later(f"progress artifact {self.key}", send)
