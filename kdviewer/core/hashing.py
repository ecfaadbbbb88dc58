"""SHA-256 of files: model weights, ONNX graphs and exported reports are identified by it."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

_CHUNK = 1 << 20  # 1 MiB: memory stays bounded whatever the file's size


def sha256_stream(f: BinaryIO) -> str:
    """Hex SHA-256 of what is left to read in an open binary file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        return sha256_stream(f)
