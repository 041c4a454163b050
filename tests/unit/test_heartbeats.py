"""Flow-run heartbeats (flows._heartbeats): the same heartbeats as Prefect's, for the run's
whole life, without the run waiting for the heartbeat thread's sleep when it ends."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

import prefect.flow_engine as flow_engine

from flows import _heartbeats


class _Engine:
    """What ``_send_heartbeats`` reads of Prefect's flow run engine (not ours to run here:
    a real engine needs a Prefect server)."""

    def __init__(self, seconds: int | None) -> None:
        self.heartbeat_seconds = seconds
        self.flow_run: Any = None
        self.logger = logging.getLogger("test.heartbeats")
        self.beats: list[tuple[str, str]] = []
        self.beaten = threading.Event()

    def _build_heartbeat_event_template(self) -> tuple[str, str]:
        return "resource", "related"

    def _emit_flow_run_heartbeat(self, resource: str, related: str) -> None:
        self.beats.append((resource, related))
        self.beaten.set()


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.daemon and t.name.startswith("Thread-")]


def test_prepared_processes_use_it_for_every_flow_run() -> None:
    _heartbeats.install()
    assert flow_engine._send_heartbeats is _heartbeats.send_heartbeats


def test_a_run_beats_at_once_and_its_thread_is_gone_when_it_ends() -> None:
    engine = _Engine(seconds=30)
    before = set(_heartbeat_threads())
    with _heartbeats.send_heartbeats(engine):
        assert engine.beaten.wait(30)
        (thread,) = set(_heartbeat_threads()) - before
    # Joined on exit: stopped, not still sleeping out its interval (Prefect's slept up to
    # a second more, and the run waited for it).
    assert not thread.is_alive()
    assert engine.beats == [("resource", "related")]


def test_a_finished_run_sends_no_heartbeat_and_none_are_sent_when_switched_off() -> None:
    final = _Engine(seconds=30)
    final.flow_run = SimpleNamespace(state=SimpleNamespace(is_final=lambda: True))
    with _heartbeats.send_heartbeats(final):
        pass
    assert final.beats == []
    off = _Engine(seconds=None)
    with _heartbeats.send_heartbeats(off):
        pass
    assert off.beats == []
