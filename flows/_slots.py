"""Slots of a Prefect global concurrency limit that a dead run gives back at once.

Prefect counts a limit's occupied slots in its database and tracks who holds them with
leases. A run killed by SIGKILL (OOM killer, reboot) never releases: on a persistent
server its lease blocks others until it expires; on a temporary server (one per CLI
command) the lease lives in that server's memory and dies with it, so the slot stays
occupied for good. Hence, here:

* slots are taken with a short lease (LEASE_SECONDS) that a thread of the run renews, so a
  holder on another host that dies blocks others for at most that long;
* the run keeps an entry in this host's holder registry (``dagvault.holders``, under
  PREFECT_HOME) while it waits and while it holds;
* a run that finds the limit full first gives back what dead holders on this host held:
  on a persistent server it revokes their leases; on a temporary server, where their
  leases are gone, it counts: slots occupied beyond those of live holders belong to dead
  runs, and it releases that many. Then it asks again every POLL_SECONDS.

(Counting assumes that the runs sharing the temporary servers' database are all on this
host, as that database is a file in PREFECT_HOME: a persistent server must keep its own.)
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from prefect.settings import PREFECT_API_URL, PREFECT_HOME

from dagvault.errors import ConfigError, DagvaultError
from dagvault.holders import Dead, Held, Registry
from flows._prefect_server import TEMPORARY_URL_ENV

# The shortest lease the server grants (it refuses less than 60 s). A live run renews it
# every RENEW_SECONDS, so three renewals in a row may fail before it lapses.
LEASE_SECONDS = 60
RENEW_SECONDS = LEASE_SECONDS / 4
# How often a waiting run asks again, looking for dead holders each time.
POLL_SECONDS = 2.0
# The server of every run that uses a temporary server on this PREFECT_HOME: they share
# its database, and with it the slots.
TEMPORARY = "temporary"

logger = get_logger("dagvault.concurrency")


def _server() -> str:
    url = PREFECT_API_URL.value()
    return TEMPORARY if not url or url == os.environ.get(TEMPORARY_URL_ENV) else str(url)


def _holder() -> ConcurrencyLeaseHolder | None:
    """The flow run, so the Prefect UI shows who holds the slots."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def ensure_limit(name: str, slots: int) -> None:
    """Create the limit unless it exists: read first, as a duplicate insert makes the
    server log an IntegrityError traceback."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots)
                )


@contextmanager
def hold(name: str, occupy: int, wait_seconds: float, too_long: DagvaultError) -> Iterator[None]:
    """Occupy ``occupy`` slots of limit ``name`` for the block; raise ``too_long`` if
    they are still taken after ``wait_seconds``."""
    registry = Registry(PREFECT_HOME.value() / "dagvault-holders")
    server = _server()
    with get_client(sync_client=True) as client, registry.entry(name, server, occupy) as mine:
        lease = _acquire(client, registry, mine, time.monotonic() + wait_seconds, too_long)
        try:
            with _renewing(lease):
                yield
        finally:
            try:
                client.release_concurrency_slots_with_lease(lease)
            except (httpx.HTTPError, OSError) as exc:
                logger.warning("Could not release limit %s (%s); its lease expires.", name, exc)


def _acquire(
    client: SyncPrefectClient, registry: Registry, mine: Held, deadline: float, too_long: Exception
) -> UUID:
    name, occupy = mine.entry.limit, mine.entry.slots
    while True:
        with registry.asking():
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[name],
                    slots=occupy,
                    mode="concurrency",
                    lease_duration=LEASE_SECONDS,
                    holder=_holder(),
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 422:
                    raise ConfigError(
                        f"The Prefect concurrency limit {name} has fewer slots than the "
                        f"{occupy} this run needs ({exc.response.json().get('detail')})",
                        f"Raise it: `prefect global-concurrency-limit update {name} "
                        f"--limit {occupy}` (or delete it; dagvault creates it again).",
                    ) from None
                if exc.response.status_code != 423:  # 423: full
                    raise
            else:
                lease = UUID(response.json()["lease_id"])
                mine.record(str(lease))
                return lease
        if _give_back_dead(client, registry, name, mine.entry.server):
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise too_long
        time.sleep(min(POLL_SECONDS, left))


def _give_back_dead(client: SyncPrefectClient, registry: Registry, name: str, server: str) -> bool:
    """Give back the slots of ``name`` that dead runs on this host held; True if any."""
    with registry.counting():
        live, dead = registry.survey(name)
        try:
            freed = 0
            if server == TEMPORARY:
                occupied = client.read_global_concurrency_limit_by_name(name).active_slots
                freed = occupied - sum(entry.slots for entry in live if entry.lease)
                if freed > 0:
                    # occupancy_seconds only feeds the server's Retry-After estimate
                    client.release_concurrency_slots([name], freed, occupancy_seconds=1.0)
            for holder in dead:
                entry = holder.entry
                if entry is not None and entry.server == server != TEMPORARY and entry.lease:
                    client.release_concurrency_slots_with_lease(UUID(entry.lease))
                    freed += entry.slots
        finally:
            for holder in dead:
                _close(holder, server)
    if freed > 0:
        logger.warning("Gave back %d slot(s) of limit %s held by dead runs.", freed, name)
    return freed > 0


def _close(holder: Dead, server: str) -> None:
    """Remove the entry if its slots are settled by a run of this server."""
    if holder.entry is None or holder.entry.server == server:
        holder.remove()
    else:
        holder.leave()


@contextmanager
def _renewing(lease: UUID) -> Iterator[None]:
    """Renew the lease in a thread while the block runs. A failed renewal is only a
    warning: the lease outlives three of them, and the core's flock still guards."""
    stop = threading.Event()

    def renew() -> None:
        with get_client(sync_client=True) as client:
            while not stop.wait(RENEW_SECONDS):
                try:
                    client.renew_concurrency_lease(lease, LEASE_SECONDS)
                except (httpx.HTTPError, OSError) as exc:
                    logger.warning("Could not renew concurrency lease %s: %s", lease, exc)

    # The copied context carries the settings (the API URL) of the run into the thread.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(renew,), daemon=True, name=f"lease-{lease}"
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
