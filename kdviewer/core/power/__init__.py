"""Power and energy: measured where the machine allows it, labelled as an estimate where it does not.

Qt-free. ``select_meter()`` picks the best meter on this machine (RAPL, a discharging battery on
Linux/macOS/Windows, NVML for GPU work, else the CPU-time × TDP estimate); ``meter_report()``
says which one is in use and why each better one is not available. Every meter measures a window
of work into an :class:`EnergyMeasurement` (total, idle baseline, marginal energy, method)::

    meter = select_meter()
    meter.measure_idle()            # once, while idle (else done on the first measure())
    with meter.measure() as m:
        run_inference()
    log.info("inference: %s", m.summary())   # m.is_estimate / m.method say how it was obtained

Meters for platforms this project cannot test (macOS, Windows, NVML) are written against their
documented interfaces and say so in their module docstrings and descriptions.
"""

from kdviewer.core.power.base import (
    DEFAULT_IDLE_SECONDS,
    CounterMeter,
    EnergyMeasurement,
    MeterUnavailable,
    PowerMeter,
    SampledMeter,
)
from kdviewer.core.power.battery import LinuxBatteryMeter
from kdviewer.core.power.estimate import DEFAULT_TDP, TDP_TABLE, EstimateMeter, TdpEntry, cpu_model, match_tdp
from kdviewer.core.power.macos import MacBatteryMeter
from kdviewer.core.power.nvml import NvmlEnergyMeter, NvmlPowerMeter
from kdviewer.core.power.rapl import RaplMeter
from kdviewer.core.power.selection import (
    METER_KINDS,
    PREFER_ENV,
    MeterStatus,
    meter_report,
    select_meter,
    shared_meter,
)
from kdviewer.core.power.windows import WindowsBatteryMeter

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "DEFAULT_TDP",
    "METER_KINDS",
    "PREFER_ENV",
    "TDP_TABLE",
    "CounterMeter",
    "EnergyMeasurement",
    "EstimateMeter",
    "LinuxBatteryMeter",
    "MacBatteryMeter",
    "MeterStatus",
    "MeterUnavailable",
    "NvmlEnergyMeter",
    "NvmlPowerMeter",
    "PowerMeter",
    "RaplMeter",
    "SampledMeter",
    "TdpEntry",
    "WindowsBatteryMeter",
    "cpu_model",
    "match_tdp",
    "meter_report",
    "select_meter",
    "shared_meter",
]
