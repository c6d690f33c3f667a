"""Secrets at rest in the cloud's data directory: AES-256-GCM under a key file.

Why: the database is what gets copied into backups and support bundles; a relay's
private key kept there in clear would travel with it (issue 7: "the key encrypted at
rest"). The 32-byte key lives beside the database in its own file, created mode 0600
the first time a secret is sealed, so a copied database alone reveals nothing.

A sealed secret is the 12-byte nonce followed by the ciphertext and its 16-byte tag
(NIST SP 800-38D: a random 96-bit nonce per message, never reused under one key). The
associated data binds a secret to the row it belongs to: moved to another row, it no
longer opens.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretError(Exception):
    """The key file is unusable, or a sealed secret does not open under it."""


class SecretBox:
    """Seals and opens secrets with the key in `key_path` (made on first use)."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._cipher: AESGCM | None = None

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead().encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise SecretError("the sealed secret is truncated")
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead().decrypt(nonce, body, associated)
        except InvalidTag as exc:
            raise SecretError(
                f"the sealed secret does not open under {self.key_path} (the key file was "
                "replaced, or the secret belongs to another record)"
            ) from exc

    def _aead(self) -> AESGCM:
        if self._cipher is None:
            self._cipher = AESGCM(self._key())
        return self._cipher

    def _key(self) -> bytes:
        """Read the key file, or make it: written 0600 under a temporary name, then linked
        into place, so no other user ever reads it and a crash never leaves a short key."""
        if self.key_path.exists():
            return self._read_key()
        key = os.urandom(KEY_BYTES)
        temporary = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, self.key_path)
        except FileExistsError:
            return self._read_key()
        finally:
            temporary.unlink()
        return key

    def _read_key(self) -> bytes:
        try:
            key = self.key_path.read_bytes()
        except OSError as exc:
            raise SecretError(f"cannot read the key file {self.key_path}: {exc}") from exc
        if len(key) != KEY_BYTES:
            raise SecretError(
                f"the key file {self.key_path} holds {len(key)} bytes, not {KEY_BYTES}"
            )
        return key
