"""The encryption key: `keygen` writes one, `decrypt` reads a file written with it."""

from __future__ import annotations

import argparse
from pathlib import Path

from dagvault.crypto import generate_key_file, load_key
from dagvault.errors import ConfigError
from dagvault.export.seal import decrypt_to
from dagvault_cli.commands._common import settings_from
from dagvault_cli.flags import KEY_HELP, Subparsers, command
from dagvault_cli.output import emit_json


def register(subparsers: Subparsers) -> None:
    p = command(
        subparsers,
        "keygen",
        keygen,
        "Write a new random encryption key (64 hex digits, mode 0600). Keep a copy off the "
        "node: without it, encrypted backups cannot be read.",
        "dagvault keygen /etc/dagvault/backup.key",
    )
    p.add_argument("path", help="the key file to create (never overwritten)")

    p = command(
        subparsers,
        "decrypt",
        decrypt,
        "Decrypt a file written with --encrypt (an export file, or a backup object copied "
        "from a target) into a new plain file.",
        "dagvault decrypt ./exports/blockchain.sql.enc --out ./blockchain.sql --key-file k",
    )
    p.add_argument("file", help="the encrypted file")
    p.add_argument("--out", required=True, help="the plain file to create (never overwritten)")
    p.add_argument("--key-file", help=KEY_HELP)


def keygen(args: argparse.Namespace) -> int:
    generate_key_file(Path(args.path))
    if args.json:
        emit_json({"key_file": args.path})
    else:
        print(f"🔑 New key written to {args.path} (mode 0600)")
        print("   Keep a copy off this node: without the key, encrypted backups are lost.")
    return 0


def decrypt(args: argparse.Namespace) -> int:
    settings = settings_from(args, encryption_key_file=args.key_file)
    if Path(args.out).exists():
        raise ConfigError(f"{args.out} already exists", "Choose a new --out path.")
    decrypt_to(Path(args.file), Path(args.out), load_key(settings.encryption_key_file))
    if args.json:
        emit_json({"decrypted": args.file, "out": args.out})
    else:
        print(f"🔓 {args.file} decrypted to {args.out}")
    return 0
