"""Versions of kdviewer and of the libraries that decide its numbers: one collector for
``kdviewer info``, the benchmark report and the model cards training writes."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

from kdviewer import __version__


def library_versions(dists: Iterable[str], *, keep_missing: bool = False) -> dict[str, str | None]:
    """``{"kdviewer": …, "python": …, dist: version, …}`` for the distributions named, read from
    their installed metadata (nothing is imported). A distribution that is not installed is left
    out, or given None with ``keep_missing``."""
    out: dict[str, str | None] = {"kdviewer": __version__, "python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if keep_missing:
                out[dist] = None
    return out
