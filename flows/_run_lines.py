"""Whether Prefect's flow and task run lines reach the terminal: the CLI's ``-v``.

A module of its own, without Prefect or the operation models: the CLI sets it before it
knows whether a flow will run at all (``dagvault list`` runs none), and the launcher adds
the filter to Prefect's terminal handler once Prefect is set up."""

from __future__ import annotations

import logging


class RunLinesOnTerminal(logging.Filter):
    """Prefect's flow and task run lines on the terminal's handler, or not. Without ``-v``
    the CLI shows its own result lines only; a failed run's "Task run … Finished in state
    Failed" and "Flow run … Encountered exception" lines would repeat its ❌ and Error:
    lines. The run history (Prefect's API handler) keeps every line either way."""

    shown = True

    def filter(self, record: logging.LogRecord) -> bool:
        return self.shown or not record.name.startswith(_RUN_LOGGERS)


_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def show_run_lines(shown: bool) -> None:
    """Whether Prefect's run lines reach the terminal (the CLI's ``-v``)."""
    RunLinesOnTerminal.shown = shown
