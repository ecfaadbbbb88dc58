"""Reading sysfs attribute files: the one place the power meters touch the file system.

Kept tiny and module-level on purpose: tests replace :func:`read_text` to simulate files that
cannot be read (``PermissionError`` is what a non-root user gets from RAPL's ``energy_uj`` on
Linux >= 5.10, and it cannot be produced with ``chmod`` when the tests run as root).
"""

from __future__ import annotations

from pathlib import Path


def read_text(path: Path) -> str:
    """The stripped contents of one sysfs attribute file (raises ``OSError`` as ``open`` does)."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().strip()


def read_int(path: Path) -> int:
    """An integer attribute (``energy_uj``, ``power_now`` ...); ``ValueError`` if it is not one."""
    return int(read_text(path))


def read_optional(path: Path) -> str | None:
    """The attribute's text, or ``None`` where the file does not exist or cannot be read."""
    try:
        return read_text(path)
    except OSError:
        return None


def describe_os_error(path: Path, exc: OSError) -> str:
    """A short human reason for an ``OSError`` raised while reading *path*."""
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied"
    if isinstance(exc, FileNotFoundError):
        return f"{path}: not present"
    return f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
