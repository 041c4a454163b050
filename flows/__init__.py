"""Prefect flows: dagvault's operations composed of the tasks in ``tasks/``.

Every flow parameter left as None comes from the settings: those the entry point resolved
and handed down (``settings``: a command, the API server, via flows/launcher.py), or, for a
deployment's run, the configuration (env > config file > default), so one deployment
serves any node.
"""
