"""The documented error types of kdviewer.core."""

from __future__ import annotations

from pathlib import Path


class KdviewerError(Exception):
    """Base class of every error kdviewer raises on purpose."""


class ImageReadError(KdviewerError):
    """A file could not be read as an image. The message names the file and the cause."""

    def __init__(self, path: str | Path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):  # survives pickling (reads done in a helper process)
        return (type(self), (self.path, self.cause))


class ModelLoadError(KdviewerError):
    """Weights or a model card could not be loaded or failed verification."""

    def __init__(self, path: str | Path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):
        return (type(self), (self.path, self.cause))
