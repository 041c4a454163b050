"""Serving and trying out a node: `api` (the HTTP API) and `sample-ledger` (a realistic
ledger to practise on)."""

from __future__ import annotations

import argparse

from dagvault.errors import ConfigError
from dagvault_cli.flags import Subparsers, command, port, positive_int
from dagvault_cli.output import emit_json, human_bytes


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "api",
        api,
        "Serve the HTTP API (backup, restore, list, export, verify, cleanup, schedule, health, "
        "metrics). Mutating endpoints need the token of DAGVAULT_API_TOKEN_FILE (a file only "
        "its owner can read; or DAGVAULT_API_TOKEN) when one is set; without it only "
        "loopback addresses are allowed.",
        "DAGVAULT_API_TOKEN_FILE=/etc/dagvault/api-token dagvault api --host 0.0.0.0 --port 8080",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=port, default=8080, help="TCP port (8080)")
    p.add_argument(
        "--audit-log",
        metavar="FILE",
        help="JSON-lines audit log (DAGVAULT_AUDIT_LOG, default ./dagvault-audit.jsonl)",
    )
    p.add_argument(
        "--warm-up",
        action="store_true",
        help="load Great Expectations and DuckDB in the background at start, so the first "
        "gate or export does not wait seconds for them (`dagvault up` sets it)",
    )

    p = command(
        subparsers,
        "sample-ledger",
        sample_ledger,
        "Write a realistic WAL-mode sample ledger of a post-quantum DAG chain.",
        "dagvault sample-ledger ./blockchain.db --transactions 200000 --seed 7",
    )
    p.add_argument("path", help="the database file to create")
    p.add_argument("--transactions", type=positive_int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nodes", type=positive_int, default=64)
    p.add_argument("--append", action="store_true", help="add transactions to an existing one")


def api(args: argparse.Namespace) -> int:
    from dagvault_api.server import serve

    return serve(
        args.host,
        args.port,
        config_file=args.config,
        audit_log=args.audit_log,
        warm_up=args.warm_up,
    )


def sample_ledger(args: argparse.Namespace) -> int:
    from dagvault.sample import create_sample_ledger

    try:
        stats = create_sample_ledger(
            args.path, args.transactions, seed=args.seed, nodes=args.nodes, append=args.append
        )
    except FileExistsError:
        raise ConfigError(
            f"{args.path} already exists", "Pass --append to add transactions, or pick a new path."
        ) from None
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"Cannot append to {args.path}: {exc}",
            "Append to a ledger written by `dagvault sample-ledger`, or drop --append.",
        ) from None
    if args.json:
        emit_json(stats.__dict__)
    else:
        print(
            f"Sample ledger {stats.path}: {stats.transactions} transactions, {stats.nodes} "
            f"nodes, {human_bytes(stats.file_size)} in {stats.seconds:.1f} s"
        )
    return 0
