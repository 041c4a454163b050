"""``dagvault up`` / ``status`` / ``down``: the node service (Prefect server, HTTP API and the
served deployments under one supervisor) and the state directory that describes it."""
