"""dagvault's Prefect deployments: ``prefect.yaml`` (work pool) and ``serve.py`` (no pool)."""
