"""What a run's answer need not wait for (dagvault.afterwards): at once in a command's own
process; after the answer, in order and never lost on a clean stop, in the service; the
quality gate's Data Docs pages among them, and /data-docs/ serving the pages queued."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dagvault import afterwards
from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.quality import gate_backup
from dagvault_api.data_docs import mount_data_docs

pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)
_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


@pytest.fixture
def service() -> Iterator[None]:
    """This process answers early, as the service's API does; stopped cleanly after."""
    afterwards.start()
    yield
    assert afterwards.finish() == 0


def _blocked() -> threading.Event:
    """Hold the worker (once it has started the slow job) until the event is set: what is
    queued behind waits."""
    started, release = threading.Event(), threading.Event()
    afterwards.later("a slow job", lambda: (started.set(), release.wait(30)))
    assert started.wait(30)
    return release


def test_without_the_service_a_job_runs_at_once() -> None:
    done: list[str] = []
    afterwards.later("job", lambda: done.append("ran"))
    assert done == ["ran"]


def test_in_the_service_jobs_run_after_in_order_with_their_callers_context(
    service: None,
) -> None:
    release = _blocked()
    done: list[tuple[int, str]] = []
    for n in range(20):
        _who.set(f"run {n}")
        afterwards.later("job", lambda n=n: done.append((n, _who.get())))
    assert done == []  # the callers did not wait for them
    release.set()
    assert afterwards.settle(30)
    assert done == [(n, f"run {n}") for n in range(20)]


def test_a_clean_stop_runs_what_is_left_and_later_jobs_run_at_once() -> None:
    afterwards.start()
    release = _blocked()
    done: list[int] = []
    for n in range(5):
        afterwards.later("job", lambda n=n: done.append(n))
    threading.Timer(0.2, release.set).start()
    assert afterwards.finish(30) == 0
    assert done == [0, 1, 2, 3, 4]
    afterwards.later("job", lambda: done.append(5))
    assert done[-1] == 5


def test_a_stop_that_cannot_wait_says_how_many_were_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    afterwards.start()
    release = _blocked()
    for _ in range(3):
        afterwards.later("job", lambda: None)
    try:
        assert afterwards.finish(0.2) == 4  # the slow one and the three behind it
    finally:
        release.set()
    assert "4 job(s)" in caplog.text


def test_a_failed_job_is_a_warning_and_the_next_ones_still_run(
    service: None, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []

    def broken() -> None:
        raise OSError("Prefect API refused")

    afterwards.later("artifact backup-x", broken)
    afterwards.later("job", lambda: done.append("ran"))
    assert afterwards.settle(30)
    assert done == ["ran"]
    warned = [r for r in caplog.records if r.name == "dagvault.afterwards"]
    assert warned and warned[0].levelno == logging.WARNING
    assert "artifact backup-x could not be published: Prefect API refused" in caplog.text


def test_a_full_queue_makes_the_caller_run_its_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(afterwards, "QUEUE_LIMIT", 2)
    afterwards.start()
    release = _blocked()
    try:
        done: list[int] = []
        for n in range(4):
            afterwards.later("job", lambda n=n: done.append(n))
        assert done == [2, 3]  # beyond the limit: run by their callers, not dropped
    finally:
        release.set()
        assert afterwards.finish(30) == 0
    assert sorted(done) == [0, 1, 2, 3]


def test_the_gate_answers_before_its_data_docs_and_names_the_index(
    ledger: Path, tmp_path: Path, service: None
) -> None:
    path = Path(create_backup(ledger, tmp_path / "backups").backup_path)
    reports = tmp_path / "reports"
    release = _blocked()
    report = gate_backup(path, LedgerProfile(), reports_dir=reports)
    index = reports / "data_docs" / "index.html"
    assert report.passed, report.problems()
    assert report.data_docs_index == str(index)
    assert not index.exists()  # its pages come after the verdict
    release.set()
    assert afterwards.settle(60)
    assert "<html" in index.read_text().lower()
    assert list((index.parent / "validations").rglob("*.html"))


def test_data_docs_requests_wait_for_the_pages_queued_before_them(
    tmp_path: Path, service: None
) -> None:
    app = FastAPI()
    mount_data_docs(app, tmp_path, token=None)
    release = _blocked()
    afterwards.later("Data Docs", lambda: (tmp_path / "index.html").write_text("<p>run 7</p>"))
    threading.Timer(0.2, release.set).start()
    page = TestClient(app).get("/data-docs/")
    assert page.status_code == 200 and page.text == "<p>run 7</p>"
