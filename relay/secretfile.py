"""Secret files (tokens, passwords, credentials): mode 0600, written atomically.

A crash mid-write must leave either the old secret or the new one, never half
of one, and no other user may read it.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(path: Path, value: str) -> None:
    """Write `value` and a newline to `path` with 0600 permissions, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (value + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def read_secret(path: Path) -> str | None:
    """The stripped contents, or None if the file is missing or empty."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
