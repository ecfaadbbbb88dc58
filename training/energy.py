"""Time and energy of each epoch, measured with the viewer's power meters (never watts × time guesses)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

import torch

from kdviewer.core.power import select_meter

log = logging.getLogger(__name__)


@dataclass
class EpochEnergy:
    """What one window cost: wall time, energy (NaN when no meter) and how the energy was obtained."""

    duration_s: float = math.nan
    energy_j: float = math.nan
    method: str = "none"
    is_estimate: bool = False

    def to_dict(self) -> dict:
        return {
            "time_s": self.duration_s,
            "energy_j": None if math.isnan(self.energy_j) else self.energy_j,
            "energy_method": self.method,
            "energy_is_estimate": self.is_estimate,
        }


def nvml_index(device) -> int:
    """NVML's index of a CUDA device. CUDA numbers the visible devices (``CUDA_VISIBLE_DEVICES``,
    fastest first by default) while NVML numbers all GPUs in PCI order: match them by PCI bus id.
    Ran on a one-GPU H100 machine (the bundled models' training, docs/MODELS.md); the mapping on
    machines with several GPUs is written against the documented interfaces but untested."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    bus = getattr(props, "pci_bus_id", None)
    try:
        import pynvml  # optional (NVIDIA machines only)

        pynvml.nvmlInit()
        for i in range(pynvml.nvmlDeviceGetCount()):
            info = pynvml.nvmlDeviceGetPciInfo(pynvml.nvmlDeviceGetHandleByIndex(i))
            if bus is not None and int(info.bus) == int(bus) and int(info.domain) == int(props.pci_domain_id):
                return i
    except Exception as exc:  # no pynvml, or an old driver: fall back to CUDA's own number
        log.debug("NVML index of cuda:%s by PCI bus id failed (%s)", index, exc)
    return index


def select_training_meter(device):
    """The viewer's meter for this device (NVML for this process's GPU on CUDA when available);
    None if no meter exists."""
    device_type = getattr(device, "type", device)
    try:
        if device_type == "cuda":
            # GPU work: NVML (this rank's GPU's energy counter) first, falling back like the viewer.
            return select_meter(gpu=True, gpu_index=nvml_index(device))
        return select_meter()
    except Exception as exc:  # a meter that cannot start must not stop a training run
        log.warning("no power meter: %s", exc)
        return None


class EpochMeter:
    """``with meter.measure() as e: ...`` fills an :class:`EpochEnergy`."""

    def __init__(self, device):
        self.meter = select_training_meter(device)

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
