"""The sha256 of a file's content, in one place (pure: no aiida)."""

from __future__ import annotations

import hashlib
import os
from typing import IO

__all__ = ["sha256_file"]

_CHUNK = 1 << 20  # bytes read at a time


def sha256_file(file: str | os.PathLike | IO) -> str:
    """Hex sha256 of a file's content: ``file`` is a path, or a file-like object read from its current
    position to its end (text chunks are hashed as UTF-8)."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return sha256_file(handle)
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(_CHUNK), b""):
        if not chunk:  # a text handle ends with "", not b""
            break
        digest.update(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8"))
    return digest.hexdigest()
