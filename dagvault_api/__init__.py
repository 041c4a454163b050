"""dagvault's HTTP API (docs/http-api.md): its documented endpoints, served by FastAPI and uvicorn.

Thin over ``flows/`` (every operation is a Prefect flow run) and the core (reads). The
modules: ``paths`` (confinement to BACKUP_DIR / EXPORT_DIR), ``auth`` (bearer token, bind
policy), ``audit`` (JSON-lines audit log), ``metrics`` (Prometheus text), ``models``
(request and response bodies), ``operations`` (flow runs with their ids, error statuses),
``service`` (what the routes share), ``routes`` (the operations), ``app`` (auth, errors,
audit middleware, the reads) and ``server`` (``dagvault api``).
"""
