"""NVIDIA GPU energy through NVML, for work that runs on the GPU (training, CUDA inference).

Uses the optional ``pynvml`` module (package ``nvidia-ml-py``); kdviewer does not depend on it,
and without it this meter is unavailable with that reason. On Volta and later GPUs the
total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver loaded) gives
counter deltas; on older GPUs the power reading (``nvmlDeviceGetPowerUsage``, mW) is sampled and
integrated. NVML counts the GPU board only, not the CPU or the rest of the machine.

Not exercised on a real GPU in this project's tests (a fake ``pynvml`` module is used).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from kdviewer.core.power.base import CounterMeter, MeterUnavailable, SampledMeter

# NVML's power reading is a ~1 s average on recent datacenter GPUs and its energy counter updates
# every few tens of milliseconds; 100 ms keeps the counter's quantisation small.
_NVML_MIN_WINDOW_S = 0.1


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        raise MeterUnavailable("nvml", "pynvml not installed (pip install nvidia-ml-py)") from None
    return pynvml


def _gpu_name(nvml: ModuleType, handle: Any) -> str:
    name = nvml.nvmlDeviceGetName(handle)
    return name.decode() if isinstance(name, bytes) else str(name)


_NOTES = [
    "Counts the GPU board only: not the CPU, memory or the rest of the machine.",
    "Chosen for GPU work only (select_meter(gpu=True) or prefer='nvml').",
]


class NvmlEnergyMeter(CounterMeter):
    """GPU energy from NVML's total-energy counter (mJ)."""

    kind = "nvml"
    primary = ("gpu",)
    min_window_s = _NVML_MIN_WINDOW_S
    guard_interval_s = None  # 64-bit millijoules: does not wrap

    def __init__(self, nvml: ModuleType, handle: Any, index: int, gpu: str):
        self._nvml, self._handle = nvml, handle
        super().__init__(f"nvml:{index}", f"NVML GPU energy counter ({gpu})")
        self._notes = list(_NOTES)

    def _read_j(self) -> dict[str, float]:
        return {"gpu": self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3}


class NvmlPowerMeter(SampledMeter):
    """GPU power from NVML's power reading (mW), sampled (GPUs without the energy counter)."""

    kind = "nvml"
    sample_interval_s = 0.1

    def __init__(self, nvml: ModuleType, handle: Any, index: int, gpu: str):
        self._nvml, self._handle = nvml, handle
        super().__init__(f"nvml:{index}", f"NVML GPU power × time ({gpu})")
        self._notes = list(_NOTES) + ["This GPU has no energy counter: power is sampled every 0.1 s."]

    def _read_power_w(self) -> float:
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3
        except Exception:  # pynvml.NVMLError and friends
            return math.nan


def probe_nvml(index: int = 0) -> NvmlEnergyMeter | NvmlPowerMeter:
    """A meter for GPU ``index`` (NVML numbering), or :class:`MeterUnavailable` saying why not."""
    nvml = _import_pynvml()
    error = getattr(nvml, "NVMLError", Exception)
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except error as exc:
        raise MeterUnavailable("nvml", f"NVML not usable (no NVIDIA driver?): {exc}") from None
    if count <= index:
        raise MeterUnavailable("nvml", f"no NVIDIA GPU {index} ({count} found)")
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    gpu = _gpu_name(nvml, handle)
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return NvmlEnergyMeter(nvml, handle, index, gpu)
    except error:
        pass
    try:
        nvml.nvmlDeviceGetPowerUsage(handle)
    except error as exc:
        raise MeterUnavailable("nvml", f"{gpu} reports neither energy nor power: {exc}") from None
    return NvmlPowerMeter(nvml, handle, index, gpu)
