"""The HTTP API's endpoints by area; authentication is auth.py's, path confinement paths.py's."""

from dagvault_api.routes.backups import backups_router
from dagvault_api.routes.exports import exports_router
from dagvault_api.routes.handoff import handoff_router
from dagvault_api.routes.status import status_router

__all__ = ["backups_router", "exports_router", "handoff_router", "status_router"]
