import sys

from dagvault_cli.main import main

# The guard matters: a local Dask cluster (fleet-backup --task-runner dask) starts its
# workers by re-importing this module in new processes.
if __name__ == "__main__":
    sys.exit(main())
