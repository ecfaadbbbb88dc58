"""The fallback when no sensor is readable: process CPU time × a per-core power from a TDP model.

Model: a CPU is looked up in :data:`TDP_TABLE` (regular expression on the model string → rated
TDP and physical core count); per-core power = TDP / physical cores; the energy of a window is
the CPU time this process used in it (all its threads, ``time.process_time``) × that per-core
power. Unknown CPUs use :data:`DEFAULT_TDP` (15 W for 4 cores); ``tdp_w`` (or the environment
variable ``KDVIEWER_TDP_W``) overrides the TDP.

Assumptions, also shown by :meth:`EstimateMeter.describe`: a busy core draws TDP / cores and an
idle one nothing; idle/static power, memory, disk, display and GPU are not counted, nor other
processes; TDP is a design figure (turbo can exceed it, light loads stay under it); with SMT two
busy hardware threads on one core count twice. The idle baseline is 0 W by construction, so the
marginal energy equals the total. Every figure is labelled "estimate". It is never a constant
wattage × wall time: a window in which the process sleeps costs (almost) nothing.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kdviewer.core.machine import physical_cores
from kdviewer.core.power import _sysfs
from kdviewer.core.power.base import CounterMeter

log = logging.getLogger(__name__)

TDP_ENV = "KDVIEWER_TDP_W"


@dataclass(frozen=True)
class TdpEntry:
    """One row of the TDP model: CPUs whose model string matches ``pattern`` (case-insensitive)."""

    pattern: str
    tdp_w: float
    cores: int  # physical cores of the representative part
    example: str  # the representative part the figures come from (or how they were set)

    @property
    def per_core_w(self) -> float:
        return self.tdp_w / self.cores


# First match wins, so specific rows come before general ones. Intel/AMD figures are the vendors'
# rated TDP (base power) of the named part. Apple publishes no TDP: its rows use the CPU cluster's
# typical all-core package power reported by macOS powermetrics, which is an approximation.
TDP_TABLE: tuple[TdpEntry, ...] = (
    TdpEntry(r"Apple M\d (Pro|Max)", 30.0, 10, "Apple M1 Pro/Max (no published TDP: typical CPU power)"),
    TdpEntry(r"Apple M1", 20.0, 8, "Apple M1 (no published TDP: typical CPU power)"),
    TdpEntry(r"Apple M2", 20.0, 8, "Apple M2 (no published TDP: typical CPU power)"),
    TdpEntry(r"Apple M[3-9]", 22.0, 8, "Apple M3 (no published TDP: typical CPU power)"),
    TdpEntry(r"Core\(TM\) Ultra|Core Ultra", 28.0, 16, "Intel Core Ultra 7 155H"),
    TdpEntry(r"i[3579]-\d{4,5}(U|G\d)\b", 15.0, 4, "Intel Core i7-8650U (U/G series)"),
    TdpEntry(r"i[3579]-\d{4,5}H[KSX]?\b", 45.0, 6, "Intel Core i7-10750H"),
    TdpEntry(r"i[3579]-\d{4,5}", 65.0, 6, "Intel Core i7-8700 (desktop)"),
    TdpEntry(r"Xeon", 150.0, 20, "Intel Xeon Gold 6248 (server)"),
    TdpEntry(r"Ryzen \d \d{4}U", 15.0, 8, "AMD Ryzen 7 5800U"),
    TdpEntry(r"Ryzen \d \d{4}H", 45.0, 8, "AMD Ryzen 7 5800H"),
    TdpEntry(r"Ryzen [79] \d{4}", 105.0, 8, "AMD Ryzen 7 5800X (desktop)"),
    TdpEntry(r"Ryzen [35] \d{4}", 65.0, 6, "AMD Ryzen 5 5600X (desktop)"),
    TdpEntry(r"EPYC", 225.0, 64, "AMD EPYC 7742 (server)"),
)

DEFAULT_TDP = TdpEntry(r"", 15.0, 4, "default for an unknown CPU")


def cpu_model(root: str | Path = "/") -> str:
    """The CPU model string, or ``""`` when it cannot be found.

    Linux: ``model name`` (or ARM's ``Hardware``/``Model``) in ``<root>/proc/cpuinfo``. With the
    real root only: macOS ``sysctl -n machdep.cpu.brand_string``, Windows' registry
    ``ProcessorNameString``, else ``platform.processor()``.
    """
    cpuinfo = _sysfs.read_optional(Path(root) / "proc" / "cpuinfo")
    if cpuinfo:
        fields: dict[str, str] = {}
        for line in cpuinfo.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip().lower(), value.strip())
        for key in ("model name", "hardware", "model", "cpu model"):
            if fields.get(key):
                return fields[key]
    if Path(root).resolve() != Path("/").resolve():
        return ""  # a fake root (tests): never consult the host
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            log.debug("sysctl machdep.cpu.brand_string failed", exc_info=True)
    if sys.platform == "win32":  # untested: written against the documented registry key
        try:
            import winreg

            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
            ) as key:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
        except OSError:
            log.debug("ProcessorNameString not readable", exc_info=True)
    return platform.processor() or ""


def match_tdp(model: str) -> TdpEntry | None:
    """The first :data:`TDP_TABLE` row whose pattern matches ``model``, else ``None``."""
    for entry in TDP_TABLE:
        if re.search(entry.pattern, model, flags=re.IGNORECASE):
            return entry
    return None


def _tdp_from_env() -> float | None:
    value = os.environ.get(TDP_ENV)
    if not value:
        return None
    try:
        tdp = float(value)
    except ValueError:
        log.warning("%s=%r is not a number of watts; ignored", TDP_ENV, value)
        return None
    if not (tdp > 0 and math.isfinite(tdp)):
        log.warning("%s=%r must be a positive number of watts; ignored", TDP_ENV, value)
        return None
    return tdp


class EstimateMeter(CounterMeter):
    """CPU time of this process × per-core watts from the TDP model. Always labelled "estimate".

    ``power_w()`` is CPU-utilisation based: this process's CPU seconds per wall second since the
    previous call × per-core watts.
    """

    kind = "estimate"
    primary = ("cpu",)
    min_window_s = 0.0  # process CPU time is accounted in nanoseconds
    guard_interval_s = None  # nothing wraps

    def __init__(
        self,
        root: str | Path = "/",
        *,
        tdp_w: float | None = None,
        default: TdpEntry = DEFAULT_TDP,
        model: str | None = None,
    ):
        self.cpu = cpu_model(root) if model is None else model
        matched = match_tdp(self.cpu)
        entry = matched or default
        if tdp_w is None:
            tdp_w = _tdp_from_env()
        if tdp_w is not None:
            if not (tdp_w > 0 and math.isfinite(tdp_w)):
                raise ValueError(f"tdp_w must be a positive number of watts, not {tdp_w!r}")
            cores = entry.cores if matched else (physical_cores() or default.cores)
            entry = TdpEntry(entry.pattern, float(tdp_w), cores, "TDP set by the user")
        self.entry = entry
        self.per_core_w = entry.per_core_w
        cpu_label = self.cpu or "unknown"
        method = (
            f"estimate: CPU time × {self.per_core_w:.2f} W/core (TDP model: {entry.tdp_w:g} W / "
            f"{entry.cores} cores, {entry.example}; CPU '{cpu_label}')"
        )
        super().__init__("estimate", method, is_estimate=True)
        self._idle_power_w = 0.0  # known at once (see measure_idle): no background measurement to wait for
        self._notes = [
            "Energy = CPU time used by this process (all its threads) during the window × "
            f"{self.per_core_w:.2f} W per busy core, where per-core power = TDP / physical cores.",
            "Assumes a busy core draws its share of the rated TDP and an idle one nothing; TDP is a "
            "design figure (turbo can exceed it, light loads stay below it).",
            "Not counted: idle/static power, memory, disk, display, GPU and other processes; other "
            "threads of this process busy during the window are counted; with SMT two busy hardware "
            "threads on one core count as two cores.",
            "Idle baseline is 0 W by construction (a sleeping process accrues no CPU time), so the "
            "marginal energy equals the total.",
        ]
        if not matched and tdp_w is None:
            self._notes.append(
                f"CPU '{cpu_label}' is not in the TDP table: default {default.tdp_w:g} W for "
                f"{default.cores} cores (set {TDP_ENV} or tdp_w= to override)."
            )

    def _read_j(self) -> dict[str, float]:
        return {"cpu": time.process_time() * self.per_core_w}

    def measure_idle(self, seconds: float = 0.0) -> float:
        """The estimate's idle baseline is 0 W by construction; nothing is measured."""
        with self._idle_lock:
            self._idle_power_w = 0.0
        return 0.0
