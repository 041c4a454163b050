"""The ``dagvault`` command line: validates arguments, starts Prefect flows, prints results."""
