"""Prefect flows: dagvault's operations composed of the tasks in ``tasks/``.

Every flow parameter left as None comes from the configuration (flag > env > config
file > default), so one deployment serves any node.
"""
