"""Off-site copies: backups kept as objects at a storage target (any ``Store``).

* ``objects``: list the complete backups at a target, upload one (read back, sidecar
  last), fetch one with its chain into a local staging directory;
* ``operations``: verify, restore, cleanup and prune at a target, through the same local
  checks and retention plans as a backup directory;
* ``replicate``: bring a target up to date with the local backup directory, and its lag.
"""
