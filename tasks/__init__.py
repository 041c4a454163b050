"""Prefect tasks: thin wrappers of the ``dagvault`` core with retries, logs and artifacts."""
