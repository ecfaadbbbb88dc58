"""Whole-laptop power on Windows from the battery's discharge rate, while discharging.

UNTESTED ON REAL HARDWARE: written against the documented Win32 call
``CallNtPowerInformation(SystemBatteryState, ...)`` (powrprof.dll), which fills a
``SYSTEM_BATTERY_STATE``: ``AcOnLine``, ``BatteryPresent``, ``Charging``, ``Discharging``
(BOOLEANs) and ``Rate`` (mW; negative while discharging). It needs no administrator rights and
no extra package. The decision logic is unit-tested with a fake query; the ctypes call is not.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from kdviewer.core.power.base import MeterUnavailable, SampledMeter

_SYSTEM_BATTERY_STATE = 5  # POWER_INFORMATION_LEVEL.SystemBatteryState
_RATE_UNKNOWN = -0x80000000  # BATTERY_UNKNOWN_RATE read as a signed LONG


@dataclass(frozen=True)
class BatteryState:
    """The fields of ``SYSTEM_BATTERY_STATE`` the meter uses."""

    ac_online: bool
    battery_present: bool
    charging: bool
    discharging: bool
    rate_mw: int


def query_battery_state() -> BatteryState:
    """``CallNtPowerInformation(SystemBatteryState)`` through ctypes (Windows only)."""

    class _State(ctypes.Structure):
        _fields_ = [
            ("AcOnLine", ctypes.c_ubyte),
            ("BatteryPresent", ctypes.c_ubyte),
            ("Charging", ctypes.c_ubyte),
            ("Discharging", ctypes.c_ubyte),
            ("Spare1", ctypes.c_ubyte * 3),
            ("Tag", ctypes.c_ubyte),
            ("MaxCapacity", ctypes.c_ulong),
            ("RemainingCapacity", ctypes.c_ulong),
            ("Rate", ctypes.c_long),
            ("EstimatedTime", ctypes.c_ulong),
            ("DefaultAlert1", ctypes.c_ulong),
            ("DefaultAlert2", ctypes.c_ulong),
        ]

    state = _State()
    status = ctypes.windll.powrprof.CallNtPowerInformation(  # type: ignore[attr-defined]
        _SYSTEM_BATTERY_STATE, None, 0, ctypes.byref(state), ctypes.sizeof(state)
    )
    if status != 0:
        raise OSError(f"CallNtPowerInformation failed with NTSTATUS {status:#x}")
    return BatteryState(
        bool(state.AcOnLine),
        bool(state.BatteryPresent),
        bool(state.Charging),
        bool(state.Discharging),
        int(state.Rate),
    )


def discharge_power_w(state: BatteryState) -> tuple[float, str]:
    """(discharge power in watts or NaN, reason when NaN)."""
    if not state.battery_present:
        return math.nan, "no battery present"
    if state.ac_online or state.charging or not state.discharging:
        return math.nan, "on mains power (not discharging)"
    if state.rate_mw == _RATE_UNKNOWN or state.rate_mw >= 0:
        return math.nan, "battery reports no discharge rate"
    return -state.rate_mw / 1e3, ""


class WindowsBatteryMeter(SampledMeter):
    """Windows battery discharge rate (``SYSTEM_BATTERY_STATE.Rate``). UNTESTED on real Windows."""

    kind = "windows-battery"
    sample_interval_s = 1.0

    def __init__(self, query: Callable[[], BatteryState] = query_battery_state):
        self._query = query
        super().__init__("battery:windows", "battery discharge rate (SYSTEM_BATTERY_STATE.Rate)")
        self._notes = [
            "Whole-laptop power from the battery's reported discharge rate, sampled every "
            f"{self.sample_interval_s:g} s; valid only while discharging.",
            "Untested on real hardware (written against the documented CallNtPowerInformation API).",
        ]

    @classmethod
    def probe(
        cls, *, platform: str = sys.platform, query: Callable[[], BatteryState] = query_battery_state
    ) -> WindowsBatteryMeter:
        """The meter if this is Windows on battery, else :class:`MeterUnavailable` saying why not."""
        if platform != "win32":
            raise MeterUnavailable("windows-battery", "not Windows")
        try:
            state = query()
        except (OSError, AttributeError) as exc:
            raise MeterUnavailable("windows-battery", f"battery state unavailable: {exc}") from None
        power, reason = discharge_power_w(state)
        if math.isnan(power):
            raise MeterUnavailable("windows-battery", reason)
        return cls(query)

    def _read_power_w(self) -> float:
        try:
            return discharge_power_w(self._query())[0]
        except OSError:
            return math.nan
