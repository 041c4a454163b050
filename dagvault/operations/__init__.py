"""Each operation's options and result as typed models: the one description of an option
that the CLI's flags, the HTTP API's request bodies, the deployments' parameters and the
flows share, and the one document that `--json` prints and the API answers.

Every field of an operation's options is a parameter of its flow of the same name
(tests/test_operations.py checks it); adding an option is a field here, its flag in the
CLI, and its line in the docs. ``registry.OPERATIONS`` names each operation's two models.
"""

from dagvault.operations.backup import BackupOptions, BackupRecord, BackupResult, BackupType
from dagvault.operations.restore import RestoreOptions, RestoreResult

__all__ = [
    "BackupOptions",
    "BackupRecord",
    "BackupResult",
    "BackupType",
    "RestoreOptions",
    "RestoreResult",
]
