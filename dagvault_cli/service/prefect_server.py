"""The node service's own Prefect server: ``prefect server start``, with every write
transaction on its SQLite database begun IMMEDIATE (why: flows/_prefect_sqlite.py).

    python -m dagvault_cli.service.prefect_server --host 127.0.0.1 --port 4200 ...

takes the options of ``prefect server start``. The change holds in this process only: one
worker in the foreground (uvicorn and Prefect's services here), as the supervisor starts it;
not with ``--workers`` > 1 or ``--background``, which start other processes.
"""

from __future__ import annotations

import sys

from flows._prefect_sqlite import begin_sqlite_writes_immediately


def main() -> None:
    begin_sqlite_writes_immediately()
    from prefect.cli import app

    sys.argv = ["prefect", "server", "start", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
