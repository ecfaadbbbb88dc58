"""Whole-laptop power on macOS from the battery's ``ioreg`` entry, while discharging. No sudo.

UNTESTED ON REAL HARDWARE: written against the documented ``AppleSmartBattery`` IORegistry
properties (``ioreg -rn AppleSmartBattery``): ``Voltage`` (mV), ``InstantAmperage`` /
``Amperage`` (mA, negative while discharging, printed as an unsigned 64-bit number),
``ExternalConnected`` and ``IsCharging`` (Yes/No). Power = |amperage| × voltage. The parsing and
the discharge rule are unit-tested on captured text; the ``ioreg`` call itself is not.
Each reading runs one ``ioreg`` process (tens of milliseconds), so a reading is reused for up to
``reading_max_age_s`` (the gauge itself refreshes far less often).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from kdviewer.core.power.base import MeterUnavailable, SampledMeter

_PROPERTY = re.compile(r'^\s*"(\w+)" = (.+?)\s*$')


def run_ioreg() -> str:
    """The text of ``ioreg -rn AppleSmartBattery``."""
    return subprocess.run(
        ["ioreg", "-rn", "AppleSmartBattery"], capture_output=True, text=True, timeout=5, check=True
    ).stdout


def parse_ioreg(text: str) -> dict[str, str]:
    """Top-level ``"Key" = value`` properties of an ``ioreg`` dump (first occurrence wins)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        m = _PROPERTY.match(line)
        if m:
            props.setdefault(m.group(1), m.group(2))
    return props


def _signed(value: str) -> int:
    number = int(value)
    return number - (1 << 64) if number >= (1 << 63) else number


def battery_power_w(props: dict[str, str]) -> tuple[float, str]:
    """(discharge power in watts or NaN, reason when NaN) from parsed ``AppleSmartBattery`` properties."""
    if props.get("ExternalConnected") == "Yes" or props.get("IsCharging") == "Yes":
        return math.nan, "on mains power (ExternalConnected/IsCharging = Yes)"
    key = "InstantAmperage" if "InstantAmperage" in props else "Amperage"
    try:
        amperage_ma = _signed(props[key])
        voltage_mv = int(props["Voltage"])
    except (KeyError, ValueError):
        return math.nan, "AppleSmartBattery reports no Amperage/Voltage"
    if amperage_ma >= 0:
        return math.nan, "battery is not discharging (amperage >= 0)"
    return abs(amperage_ma) * voltage_mv / 1e6, ""


class MacBatteryMeter(SampledMeter):
    """macOS battery discharge power (|amperage| × voltage from ioreg). UNTESTED on a real Mac."""

    kind = "macos-battery"
    sample_interval_s = 1.0
    reading_max_age_s = 1.0

    def __init__(self, runner: Callable[[], str] = run_ioreg):
        self._runner = runner
        self._cache_lock = threading.Lock()
        self._cached: tuple[float, float] | None = None  # (monotonic time, watts)
        super().__init__("battery:AppleSmartBattery", "battery discharge power (ioreg amperage × voltage)")
        self._notes = [
            "Whole-laptop power from the battery gauge via ioreg, sampled every "
            f"{self.sample_interval_s:g} s; valid only while discharging.",
            "Untested on real hardware (written against the documented AppleSmartBattery properties).",
        ]

    @classmethod
    def probe(cls, *, platform: str = sys.platform, runner: Callable[[], str] = run_ioreg) -> MacBatteryMeter:
        """The meter if this is a Mac on battery, else :class:`MeterUnavailable` saying why not."""
        if platform != "darwin":
            raise MeterUnavailable("macos-battery", "not macOS")
        try:
            text = runner()
        except (OSError, subprocess.SubprocessError) as exc:
            raise MeterUnavailable("macos-battery", f"ioreg failed: {exc}") from None
        props = parse_ioreg(text)
        if not props:
            raise MeterUnavailable("macos-battery", "no AppleSmartBattery (no battery)")
        power, reason = battery_power_w(props)
        if math.isnan(power):
            raise MeterUnavailable("macos-battery", reason)
        return cls(runner)

    def _read_power_w(self) -> float:
        with self._cache_lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.reading_max_age_s:
                return self._cached[1]
            try:
                power = battery_power_w(parse_ioreg(self._runner()))[0]
            except (OSError, subprocess.SubprocessError):
                power = math.nan
            self._cached = (now, power)
            return power
