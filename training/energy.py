"""Time and energy of each epoch, measured with the viewer's power meters (never watts × time guesses)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class EpochEnergy:
    """What one window cost: wall time, energy (NaN when no meter) and how the energy was obtained."""

    duration_s: float = math.nan
    energy_j: float = math.nan
    method: str = "none"
    is_estimate: bool = False

    def to_dict(self) -> dict:
        return {"time_s": self.duration_s, "energy_j": None if math.isnan(self.energy_j) else self.energy_j,
                "energy_method": self.method, "energy_is_estimate": self.is_estimate}


def select_training_meter(device_type: str):
    """The viewer's meter for this device (NVML on CUDA when available); None if no meter exists."""
    try:
        from kdviewer.core.power import select_meter
    except ImportError:
        log.warning("kdviewer.core.power.select_meter is unavailable: epochs are timed, energy not measured")
        return None
    try:
        # GPU work: NVML (the GPU's energy counter) first, falling back like the viewer does.
        return select_meter(gpu=device_type == "cuda")
    except Exception as exc:  # a meter that cannot start must not stop a training run
        log.warning("no power meter: %s", exc)
        return None


class EpochMeter:
    """``with meter.measure() as e: ...`` fills an :class:`EpochEnergy`."""

    def __init__(self, device_type: str):
        self.meter = select_training_meter(device_type)

    @contextlib.contextmanager
    def measure(self):
        out = EpochEnergy()
        t0 = time.perf_counter()
        if self.meter is None:
            try:
                yield out
            finally:
                out.duration_s = time.perf_counter() - t0
            return
        with self.meter.measure() as m:
            try:
                yield out
            finally:
                out.duration_s = time.perf_counter() - t0
        out.energy_j = float(m.energy_j)
        out.method = str(m.method)
        out.is_estimate = bool(m.is_estimate)
