"""Encryption at rest: AES-256-GCM in the STREAM construction, with the key from a file
or an environment variable.

File format "DVENC001" (what every encrypted backup object and export file holds):

    header  = b"DVENC001" | key id (16 bytes) | nonce prefix (7 random bytes) | u32 chunk size
    chunk i = AES-256-GCM(key, nonce = prefix | u32 i | last-flag byte, aad = header)
              over up to ``chunk size`` plaintext bytes, each followed by its 16-byte tag

Every chunk is authenticated together with its position and whether it is the last one
(Hoang, Reyhanitabar, Rogaway and Vizár's STREAM, as used by age and Tink), so a flipped
bit, reordered, dropped or duplicated chunks and a file cut at a chunk boundary are all
detected; the header (chunk size, key id) is bound into every tag. Memory is one chunk,
whatever the file size. The key id (a hash of the key, which cannot be inverted) tells
"wrong key" apart from "tampered file".

The key is 32 random bytes written as 64 hex digits (``dagvault keygen FILE``). Lose it
and every backup encrypted with it is lost: nobody, dagvault included, can decrypt them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dagvault.errors import EncryptionKeyError, VerificationError, storage_error

MAGIC = b"DVENC001"
ALGORITHM = "aes-256-gcm-stream-v1"
KEY_ENV = "DAGVAULT_ENCRYPTION_KEY"
ENCRYPTED_SUFFIX = ".enc"
# Plaintext bytes per authenticated chunk. Default: 1 MiB (16 bytes of tag per MiB;
# AES-GCM runs at GB/s, so the chunk size does not show in the time).
CHUNK_BYTES = 1024 * 1024
_HEADER = struct.Struct(">8s16s7sI")
TAG_BYTES = 16

KEY_HINT = (
    f"Give the key with --key-file FILE, DAGVAULT_ENCRYPTION_KEY_FILE or {KEY_ENV} (64 hex "
    "digits). A new key: `dagvault keygen FILE`; keep a copy off the node — without it the "
    "encrypted backups cannot be read."
)


def parse_key(text: str, source: str) -> bytes:
    """A key written as 64 hex digits (or base64 of 32 bytes)."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise EncryptionKeyError(
            f"The encryption key in {source} is not 32 bytes as 64 hex digits", KEY_HINT
        )
    return key


def load_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key from ``key_file`` or, without one, from DAGVAULT_ENCRYPTION_KEY; None if
    neither is given."""
    environ = os.environ if environ is None else environ
    if key_file is not None:
        try:
            return parse_key(key_file.read_text(encoding="ascii"), str(key_file))
        except (OSError, UnicodeDecodeError) as exc:
            raise EncryptionKeyError(
                f"Cannot read the key file {key_file}: {exc}", KEY_HINT
            ) from None
    if KEY_ENV in environ:
        return parse_key(environ[KEY_ENV], f"environment variable {KEY_ENV}")
    return None


def require_key(key: bytes | None, what: str) -> bytes:
    if key is None:
        raise EncryptionKeyError(f"{what} needs the encryption key, and none was given", KEY_HINT)
    return key


def writing_key(encrypt: bool, key_file: Path | None) -> bytes | None:
    """The key to encrypt with (EncryptionKeyError if encryption is on and none is
    given), or None when encryption is off."""
    if not encrypt:
        return None
    return require_key(load_key(key_file), "Encryption (--encrypt, BACKUP_ENCRYPTION_ENABLED)")


def key_id(key: bytes) -> bytes:
    return hashlib.sha3_256(b"dagvault key id\0" + key).digest()[:16]


def generate_key_file(path: Path) -> None:
    """Write a new random key (hex) readable by its owner only; never overwrite a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise EncryptionKeyError(
            f"{path} already exists; dagvault never overwrites a key",
            "Choose another file name (a lost key is lost backups).",
        ) from None
    except OSError as exc:
        raise storage_error(exc, "creating key file", str(path)) from exc
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(os.urandom(32).hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _chunks(fh: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """(chunk, is_last), reading one chunk ahead; an empty input is one empty last chunk."""
    current = fh.read(size)
    while True:
        following = fh.read(size)
        yield current, not following
        if not following:
            return
        current = following


def encrypt_stream(source: BinaryIO, dest: BinaryIO, key: bytes) -> None:
    prefix = os.urandom(7)
    header = _HEADER.pack(MAGIC, key_id(key), prefix, CHUNK_BYTES)
    dest.write(header)
    aead = AESGCM(key)
    for index, (chunk, last) in enumerate(_chunks(source, CHUNK_BYTES)):
        dest.write(aead.encrypt(_nonce(prefix, index, last), chunk, header))


def decrypt_stream(source: BinaryIO, dest: BinaryIO, key: bytes, what: str) -> None:
    """Decrypt ``source`` into ``dest``; EncryptionKeyError for another key,
    VerificationError for anything tampered, truncated or not in this format."""
    header = source.read(_HEADER.size)
    if len(header) != _HEADER.size or not header.startswith(MAGIC):
        raise VerificationError(f"{what} is not a dagvault-encrypted file (bad header)")
    _, stored_id, prefix, chunk_bytes = _HEADER.unpack(header)
    if stored_id != key_id(key):
        raise EncryptionKeyError(
            f"{what} was encrypted with another key than the one given", KEY_HINT
        )
    if not 0 < chunk_bytes <= 64 * CHUNK_BYTES:
        raise VerificationError(f"{what}: corrupt encryption header")
    aead = AESGCM(key)
    for index, (chunk, last) in enumerate(_chunks(source, chunk_bytes + TAG_BYTES)):
        try:
            dest.write(aead.decrypt(_nonce(prefix, index, last), chunk, header))
        except InvalidTag:
            raise VerificationError(
                f"{what}: chunk {index} fails authentication: the file was modified or "
                "truncated after it was encrypted",
                "Do not use this copy; restore from another replica or backup.",
            ) from None


def encrypt_file(source: Path, dest: Path, key: bytes) -> None:
    """Encrypt ``source`` into the new file ``dest`` (fsynced)."""
    with open(source, "rb") as src, open(dest, "xb") as out:
        encrypt_stream(src, out, key)
        out.flush()
        os.fsync(out.fileno())


def decrypt_file(source: Path, dest: Path, key: bytes, what: str | None = None) -> None:
    """``what`` names the file in errors when ``source`` is only a temporary copy of it
    (an object downloaded from a target): the user asked for that, not for the copy."""
    with open(source, "rb") as src, open(dest, "xb") as out:
        decrypt_stream(src, out, key, what or str(source))


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` starts like a dagvault-encrypted file (DVENC001)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False
