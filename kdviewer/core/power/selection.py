"""Choosing the best available power meter, and reporting why the better ones were not used.

Automatic order (CPU work): RAPL → Linux battery (discharging) → macOS battery → Windows battery
→ estimate. NVML measures the GPU only, so it is chosen for GPU work (``gpu=True``, where it comes
first) or when asked for by name. ``prefer`` (or the environment variable
``KDVIEWER_POWER_METER``) names a kind to try first; when it is unavailable the automatic order
follows and the report says why. The estimate is always available.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from kdviewer.core.power.base import MeterUnavailable, PowerMeter
from kdviewer.core.power.battery import LinuxBatteryMeter
from kdviewer.core.power.estimate import EstimateMeter
from kdviewer.core.power.macos import MacBatteryMeter
from kdviewer.core.power.nvml import probe_nvml
from kdviewer.core.power.rapl import RaplMeter
from kdviewer.core.power.windows import WindowsBatteryMeter

log = logging.getLogger(__name__)

PREFER_ENV = "KDVIEWER_POWER_METER"

# kind -> label for reports, in the automatic order for CPU work.
METER_KINDS: dict[str, str] = {
    "rapl": "RAPL",
    "battery": "battery",
    "macos-battery": "macOS battery",
    "windows-battery": "Windows battery",
    "nvml": "NVIDIA NVML",
    "estimate": "estimate",
}
_BATTERY_KINDS = ("battery", "macos-battery", "windows-battery")


@dataclass(frozen=True)
class MeterStatus:
    """One meter kind on this machine: usable or not, why, and whether it is the one in use."""

    kind: str  # key of METER_KINDS
    name: str  # human label: "RAPL", "battery", ...
    available: bool
    reason: str  # why unavailable, or what it is / why it was not chosen
    chosen: bool = False
    meter_name: str | None = None  # the sensor when available, e.g. "rapl:package-0"

    def __str__(self) -> str:
        mark = "*" if self.chosen else " "
        state = "in use" if self.chosen else ("available" if self.available else "not available")
        return f"{mark} {self.name}: {state}: {self.reason}"


def _probe(kind: str, root: Path, tdp_w: float | None, gpu_index: int = 0) -> PowerMeter:
    if kind == "rapl":
        return RaplMeter.probe(root)
    if kind == "battery":
        return LinuxBatteryMeter.probe(root)
    if kind in ("macos-battery", "windows-battery") and root.resolve() != Path("/").resolve():
        # A fake root (tests, or a report about another tree) says nothing about this OS.
        raise MeterUnavailable(kind, "only probed with the real root '/'")
    if kind == "macos-battery":
        return MacBatteryMeter.probe()
    if kind == "windows-battery":
        return WindowsBatteryMeter.probe()
    if kind == "nvml":
        return probe_nvml(gpu_index)
    if kind == "estimate":
        return EstimateMeter(root, tdp_w=tdp_w)
    raise ValueError(kind)


def _resolve_prefer(prefer: str | None) -> list[str]:
    if prefer is None:
        env = os.environ.get(PREFER_ENV, "").strip().lower()
        if not env:
            return []
        if env not in METER_KINDS:
            log.warning("%s=%r is not one of %s; ignored", PREFER_ENV, env, ", ".join(METER_KINDS))
            return []
        prefer = env
    prefer = prefer.strip().lower()
    if prefer not in METER_KINDS:
        raise ValueError(f"unknown power meter {prefer!r}; choose one of {', '.join(METER_KINDS)}")
    return list(_BATTERY_KINDS) if prefer == "battery" else [prefer]


def _order(preferred: list[str], gpu: bool) -> list[str]:
    auto = list(METER_KINDS)  # NVML just before the estimate (probed for the report only) ...
    if gpu:
        auto = ["nvml"] + [k for k in auto if k != "nvml"]  # ... or first, for GPU work
    return preferred + [k for k in auto if k not in preferred]


def _choose(
    root: str | Path, prefer: str | None, tdp_w: float | None, gpu: bool, probe_all: bool, gpu_index: int = 0
) -> tuple[PowerMeter, list[MeterStatus]]:
    root = Path(root)
    preferred = _resolve_prefer(prefer)
    order = _order(preferred, gpu)
    chosen: PowerMeter | None = None
    statuses: dict[str, MeterStatus] = {}
    for kind in order:
        if chosen is not None and not probe_all:
            break
        usable = kind != "nvml" or gpu or kind in preferred  # NVML says nothing about CPU work
        if not usable and not probe_all:
            continue
        label = METER_KINDS[kind]
        try:
            meter = _probe(kind, root, tdp_w, gpu_index)
        except MeterUnavailable as exc:
            statuses[kind] = MeterStatus(kind, label, False, exc.reason)
            continue
        except Exception as exc:  # a broken optional sensor must not stop the app: report it
            log.warning("power meter %s: probe failed", label, exc_info=True)
            statuses[kind] = MeterStatus(kind, label, False, f"probe failed: {exc!r}")
            continue
        if chosen is None and usable:
            chosen = meter
            reason = meter.method
            if preferred and kind not in preferred:
                reason += f" (preferred {', '.join(preferred)}: not available)"
            statuses[kind] = MeterStatus(kind, label, True, reason, True, meter.name)
            continue
        if not usable:
            why = "measures the GPU only: used for GPU work (gpu=True or prefer='nvml')"
        else:
            why = f"not chosen: {chosen.name} comes first" if chosen else "not chosen"
        statuses[kind] = MeterStatus(kind, label, True, f"{meter.method}; {why}", False, meter.name)
    assert chosen is not None  # the estimate is always available
    report = [statuses[k] for k in METER_KINDS if k in statuses]
    return chosen, report


def select_meter(
    root: str | Path = "/",
    prefer: str | None = None,
    *,
    tdp_w: float | None = None,
    gpu: bool = False,
    gpu_index: int = 0,
) -> PowerMeter:
    """The best power meter available, falling back to the labelled estimate.

    ``root`` is the file-system root under which ``/sys`` and ``/proc`` are read (tests pass a fake
    tree). ``prefer`` names a kind (``rapl``, ``battery``, ``macos-battery``, ``windows-battery``,
    ``nvml``, ``estimate``; default: env ``KDVIEWER_POWER_METER``) tried first. ``tdp_w`` overrides the
    estimate's TDP. ``gpu=True`` for GPU work puts NVML first, for the GPU ``gpu_index`` in NVML's
    numbering. Unknown ``prefer`` raises ``ValueError`` (an unknown env value is logged and ignored).
    Logs the choice and why each better meter was not available.
    """
    meter, report = _choose(root, prefer, tdp_w, gpu, probe_all=False, gpu_index=gpu_index)
    for status in report:
        if not status.chosen:
            log.info("power meter %s not used: %s", status.name, status.reason)
    log.info("power meter: %s (%s)", meter.name, meter.method)
    return meter


def meter_report(
    root: str | Path = "/", prefer: str | None = None, *, tdp_w: float | None = None, gpu: bool = False
) -> list[MeterStatus]:
    """Every meter kind with its availability and reason, the one :func:`select_meter` picks marked
    ``chosen`` (for ``kdviewer info``). Probes every kind; measures nothing."""
    return _choose(root, prefer, tdp_w, gpu, probe_all=True)[1]


_shared_lock = threading.Lock()
_shared: list[PowerMeter | None] = []  # [meter or None] once chosen: one meter per process


def shared_meter() -> PowerMeter | None:
    """The process's power meter (or None), chosen once by :func:`select_meter`; its idle baseline
    is then measured in the background, so no inference waits for it. One shared meter lets windows
    of the student and the teacher that overlap split the overlap (see
    :class:`~kdviewer.core.power.base.CounterMeter`)."""
    with _shared_lock:
        if _shared:
            return _shared[0]
        meter = None
        try:
            meter = select_meter()
            meter.start_idle_measurement()
        except Exception as exc:  # energy is optional for every caller: scores come without it
            log.warning("no power meter available (%s); energy is not measured", exc)
            meter = None
        _shared.append(meter)
        return meter
