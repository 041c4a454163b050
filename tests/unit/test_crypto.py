"""The streaming AES-256-GCM format: round trips at chunk edges, and every kind of
tampering (flipped bit, truncation at a chunk boundary, reordered chunks) detected."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagvault import crypto
from dagvault.errors import EncryptionKeyError, VerificationError

KEY = os.urandom(32)
CHUNK = 16  # small chunks so that a few bytes span many of them
SEALED_CHUNK = CHUNK + crypto.TAG_BYTES


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "CHUNK_BYTES", CHUNK)


def seal(data: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(data), out, key)
    return out.getvalue()


def unseal(data: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(data), out, key, "test file")
    return out.getvalue()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5 * CHUNK))
def test_round_trip(data: bytes) -> None:
    sealed = seal(data)
    assert unseal(sealed) == data
    assert seal(data) != sealed  # a fresh nonce prefix every time


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_round_trip_at_chunk_edges(size: int) -> None:
    data = os.urandom(size)
    assert unseal(seal(data)) == data


def test_flipped_bit_is_detected() -> None:
    sealed = bytearray(seal(os.urandom(3 * CHUNK)))
    sealed[-5] ^= 0x80
    with pytest.raises(VerificationError, match="chunk 2 fails authentication"):
        unseal(bytes(sealed))


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    sealed = seal(os.urandom(3 * CHUNK))
    header = len(sealed) - 3 * SEALED_CHUNK
    with pytest.raises(VerificationError, match="fails authentication"):
        unseal(sealed[: header + 2 * SEALED_CHUNK])


def test_reordered_chunks_are_detected() -> None:
    sealed = seal(os.urandom(3 * CHUNK))
    header = len(sealed) - 3 * SEALED_CHUNK
    first, second = (
        sealed[header : header + SEALED_CHUNK],
        sealed[header + SEALED_CHUNK : header + 2 * SEALED_CHUNK],
    )
    swapped = sealed[:header] + second + first + sealed[header + 2 * SEALED_CHUNK :]
    with pytest.raises(VerificationError, match="chunk 0 fails authentication"):
        unseal(swapped)


def test_wrong_key_and_foreign_file_are_told_apart() -> None:
    with pytest.raises(EncryptionKeyError, match="another key"):
        unseal(seal(b"ledger"), os.urandom(32))
    with pytest.raises(VerificationError, match="not a dagvault-encrypted file"):
        unseal(b"SQLite format 3\0" + b"\0" * 100)


def test_keys_from_file_or_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "dagvault.key"
    crypto.generate_key_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = crypto.load_key(key_file, {})
    assert key is not None and len(key) == 32
    with pytest.raises(EncryptionKeyError, match="never overwrites"):
        crypto.generate_key_file(key_file)
    assert crypto.load_key(None, {crypto.KEY_ENV: key.hex()}) == key
    assert crypto.load_key(None, {}) is None
    with pytest.raises(EncryptionKeyError, match="not 32 bytes"):
        crypto.load_key(None, {crypto.KEY_ENV: "abc"})
    with pytest.raises(EncryptionKeyError, match="Cannot read the key file"):
        crypto.load_key(tmp_path / "missing.key", {})
