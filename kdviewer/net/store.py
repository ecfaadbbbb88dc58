"""The receive store: ``DIR/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, written atomically, within a
disk budget, idempotent for duplicates."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# PS3.5 9.1: components of digits without leading zeros, separated by dots, at most 64 characters.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
MAX_UID_LENGTH = 64


def folder_bytes(root: Path) -> int:
    """The size of the files below ``root`` (links not followed); a walk of the whole folder, so
    slow for a large store."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


class StoreFullError(Exception):
    """Writing an instance would exceed the store's disk budget."""


def is_valid_uid(value) -> bool:
    """Whether ``value`` is a well-formed DICOM UID, so that it is safe as one path component."""
    return isinstance(value, str) and len(value) <= MAX_UID_LENGTH and _UID.fullmatch(value) is not None


def short_id(uid: str) -> str:
    """A short, non-reversible tag for an instance in logs (UIDs can identify a patient's study)."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:10]


@dataclass(frozen=True)
class Stored:
    """Where an instance went, and whether it was new (False: an identical duplicate)."""

    path: Path
    new: bool


class ReceiveStore:
    """A folder of received instances with a byte budget.

    ``max_bytes`` bounds the store's total size (counted once at start by :func:`folder_bytes`,
    then kept up to date); ``min_free_bytes`` keeps that much of the file system free whatever
    the budget says. Thread safe: one association thread per peer writes through :meth:`put`.
    """

    def __init__(self, root: str | os.PathLike, *, max_bytes: int, min_free_bytes: int = 256 * 1024 * 1024):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.min_free_bytes = int(max_bytes), int(min_free_bytes)
        self._lock = threading.Lock()
        self.used_bytes = folder_bytes(self.root)

    def path_for(self, study_uid: str, sop_uid: str, suffix: str = ".dcm") -> Path:
        """The path of an instance (or a file beside it); ValueError unless both are valid UIDs."""
        for what, uid in (("Study Instance UID", study_uid), ("SOP Instance UID", sop_uid)):
            if not is_valid_uid(uid):
                raise ValueError(f"invalid {what}")
        return self.root / study_uid / f"{sop_uid}{suffix}"

    def reserve(self, nbytes: int) -> None:
        """Count ``nbytes`` against the budget; :class:`StoreFullError` when they do not fit."""
        with self._lock:
            free = shutil.disk_usage(self.root).free
            if self.used_bytes + nbytes > self.max_bytes or free - nbytes < self.min_free_bytes:
                raise StoreFullError(
                    f"store full: {self.used_bytes + nbytes} bytes would exceed the budget of"
                    f" {self.max_bytes} or leave less than {self.min_free_bytes} bytes free ({free} free)"
                )
            self.used_bytes += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.used_bytes = max(0, self.used_bytes - nbytes)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``,
        so that no reader ever sees a partial file; the temporary file is removed on any failure."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def put(self, study_uid: str, sop_uid: str, data: bytes) -> Stored:
        """Store one encoded instance (DICOM file format). An identical duplicate is left as it is
        (``new`` False); a different one with the same UIDs replaces it. Raises ValueError for
        invalid UIDs, :class:`StoreFullError` over budget, OSError when the disk fails."""
        path = self.path_for(study_uid, sop_uid)
        try:
            old_size = path.stat().st_size
        except FileNotFoundError:
            old_size = None
        if old_size == len(data) and path.read_bytes() == data:
            return Stored(path, new=False)
        self._write_within_budget(path, data)
        if old_size is not None:
            self.release(old_size)
        return Stored(path, new=True)

    def write_beside(self, path: Path, suffix: str, data: bytes) -> Path:
        """Write a result file next to an instance (``<SOPInstanceUID><suffix>``), atomically and
        within the budget (:class:`StoreFullError`)."""
        target = path.with_name(path.name.removesuffix(".dcm") + suffix)
        self._write_within_budget(target, data)
        return target

    def _write_within_budget(self, path: Path, data: bytes) -> None:
        """:meth:`write_atomic` with its bytes reserved first and given back if the write fails."""
        self.reserve(len(data))
        try:
            self.write_atomic(path, data)
        except BaseException:
            self.release(len(data))
            raise
