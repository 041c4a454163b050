"""The node's status: health (open to all, for liveness probes) and Prometheus metrics."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.params import Depends

from dagvault.health import check_health
from dagvault.storage.backup_store import backup_store
from dagvault_api.metrics import CONTENT_TYPE
from dagvault_api.models import Envelope, Health
from dagvault_api.service import Service, envelope


def status_router(service: Service, reads: list[Depends]) -> APIRouter:
    router = APIRouter()
    settings = service.settings
    started = time.monotonic()

    @router.get("/health", response_model=Envelope[Health])
    async def health() -> dict[str, Any]:
        """Liveness: answers while operations run; never reads the backups (it stats them:
        ``degraded`` with warnings when they are open to more accounts than the ledger)."""
        running = sum(
            int(sample.value)
            for family in service.metrics.in_progress.collect()
            for sample in family.samples
        )
        local = backup_store(settings.backup_dir).local_path
        backups = None if local is None else service.local(local)
        report = check_health(
            service.local(settings.database_path),
            backups,
            rpo_target=settings.rpo_target_seconds,
        )
        return envelope(
            {
                **report.to_json(),
                "operations_in_progress": running,
                "uptime_seconds": round(time.monotonic() - started, 3),
            }
        )

    @router.get(
        "/metrics",
        dependencies=reads,
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    def prometheus() -> Response:
        """Prometheus text exposition format."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return router
