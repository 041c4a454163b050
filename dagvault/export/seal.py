"""Encryption of a finished export (``export --encrypt``).

The export is written, counted and gated in plaintext as usual (DuckDB must read it),
then each data file becomes ``<file>.enc`` (dagvault.crypto's format), the manifest
gains an ``encryption`` record (algorithm, key id, and per file the name, size and
SHA3-256 of the encrypted bytes), and only then are the plaintext files removed. The
manifest itself stays readable: it holds table names, columns and row counts, no rows.
``dagvault decrypt FILE.enc`` gives a file back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagvault import crypto, safedir
from dagvault.checksum import sha3_256_file
from dagvault.errors import storage_error
from dagvault.fsio import discard, fsync_dir, publish, temp_path, write_atomic


def seal_export(files: list[Path], manifest: Path, key: bytes) -> list[Path]:
    """Encrypt the data ``files`` of an export whose manifest is ``manifest``; return the
    export's files afterwards (the ``.enc`` files, then the manifest)."""
    # Inside the API's EXPORT_DIR, through the export's directory held open (safedir).
    with safedir.directory(manifest.parent) as where:
        sealed = _seal([where / f.name for f in files], where / manifest.name, key)
    return [manifest.parent / f.name for f in sealed]


def _seal(files: list[Path], manifest: Path, key: bytes) -> list[Path]:
    document: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    sealed: dict[str, dict[str, Any]] = {}
    outputs = []
    for plain in files:
        enc = plain.with_name(plain.name + crypto.ENCRYPTED_SUFFIX)
        temp = temp_path(enc)
        try:
            crypto.encrypt_file(plain, temp, key)
            publish(temp, enc, overwrite=True)
        except OSError as exc:
            raise storage_error(exc, "encrypting", str(plain)) from exc
        finally:
            discard(temp)
        sealed[plain.name] = {
            "file": enc.name,
            "bytes": enc.stat().st_size,
            "sha3_256": sha3_256_file(enc),
        }
        outputs.append(enc)
    document["encryption"] = {
        "algorithm": crypto.ALGORITHM,
        "key_id": crypto.key_id(key).hex(),
        "files": sealed,
    }
    write_atomic(manifest, (json.dumps(document, indent=2) + "\n").encode())
    for plain in files:
        discard(plain)
    fsync_dir(manifest.parent)
    return [*outputs, manifest]


def decrypt_to(source: Path, dest: Path, key: bytes | None) -> None:
    """Decrypt ``source`` into the new file ``dest`` (never overwritten); nothing is left
    at ``dest`` unless the whole file authenticated."""
    key = crypto.require_key(key, f"Decrypting {source}")
    temp = temp_path(dest.absolute())
    try:
        crypto.decrypt_file(source, temp, key)
        publish(temp, dest.absolute())
    except FileNotFoundError as exc:
        raise storage_error(exc, "reading", str(source)) from exc
    finally:
        discard(temp)
