"""What this machine offers the models: its physical cores (the default thread count, the power
estimate's core count and the benchmark's machine line all read them here)."""

from __future__ import annotations

import psutil


def physical_cores() -> int | None:
    """Physical CPU cores, or None where the system does not tell."""
    try:
        return psutil.cpu_count(logical=False)
    except Exception:  # psutil has no reading for this platform
        return None
