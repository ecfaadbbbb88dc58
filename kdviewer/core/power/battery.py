"""Whole-laptop power from the Linux battery fuel gauge, used only while discharging.

``<root>/sys/class/power_supply/<name>`` with ``type`` = ``Battery`` (``scope`` = ``Device``
marks a peripheral's battery, e.g. a mouse, and is skipped). Power is ``power_now`` (µW) or, where
the gauge reports current instead, ``|current_now| (µA) × voltage_now (µV)``; some firmware
gives the discharge current a negative sign. While charging (or full, or "not charging" on mains
power) the battery's figure is not the laptop's consumption, so the meter is unavailable, and
a reading taken while not discharging is invalid (NaN).

Fuel gauges refresh every few seconds, so one short inference sees a single reading: per-inference
figures from this meter are meaningful only averaged over many inferences (``kdviewer bench``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from kdviewer.core.power import _sysfs
from kdviewer.core.power.base import MeterUnavailable, SampledMeter


@dataclass(frozen=True)
class BatterySupply:
    """One battery in ``/sys/class/power_supply`` and how its power is read."""

    name: str
    path: Path
    source: str  # "power_now" or "current_now × voltage_now"

    def status(self) -> str:
        return _sysfs.read_optional(self.path / "status") or "Unknown"

    def power_w(self) -> float:
        """Discharge power in watts; NaN when not discharging or unreadable."""
        if self.status() != "Discharging":
            return math.nan
        try:
            if self.source == "power_now":
                return abs(_sysfs.read_int(self.path / "power_now")) / 1e6
            current = abs(_sysfs.read_int(self.path / "current_now"))
            voltage = _sysfs.read_int(self.path / "voltage_now")
            return current * voltage / 1e12
        except (OSError, ValueError):
            return math.nan


def _batteries(root: Path) -> list[Path]:
    base = root / "sys" / "class" / "power_supply"
    if not base.is_dir():
        raise MeterUnavailable("battery", f"{base} not present")
    found = []
    for supply in sorted(base.iterdir()):
        if _sysfs.read_optional(supply / "type") != "Battery":
            continue
        if _sysfs.read_optional(supply / "scope") == "Device":
            continue
        found.append(supply)
    if not found:
        raise MeterUnavailable("battery", f"none found in {base}")
    return found


def _power_source(supply: Path) -> str | None:
    if _sysfs.read_optional(supply / "power_now") is not None:
        return "power_now"
    if (
        _sysfs.read_optional(supply / "current_now") is not None
        and _sysfs.read_optional(supply / "voltage_now") is not None
    ):
        return "current_now × voltage_now"
    return None


class LinuxBatteryMeter(SampledMeter):
    """Sum of the discharge power of the discharging batteries, sampled and integrated."""

    kind = "battery"
    sample_interval_s = 0.5

    def __init__(self, supplies: list[BatterySupply]):
        if not supplies:
            raise ValueError("LinuxBatteryMeter needs at least one battery")
        self.supplies = list(supplies)
        sources = sorted({s.source for s in supplies})
        name = "battery:" + "+".join(s.name for s in supplies)
        super().__init__(name, f"battery discharge power ({', '.join(sources)})")
        self._notes = [
            "Whole-laptop power from the battery fuel gauge (display, disk, everything), sampled "
            f"every {self.sample_interval_s:g} s and integrated over each window.",
            "Valid only while discharging: readings on mains power are dropped (NaN).",
            "Gauges refresh every few seconds, so single short windows see one reading: average "
            "over many inferences.",
        ]

    @classmethod
    def probe(cls, root: str | Path = "/") -> LinuxBatteryMeter:
        """The discharging batteries under ``<root>``, or :class:`MeterUnavailable` saying why not."""
        supplies, reasons = [], []
        for path in _batteries(Path(root)):
            status = _sysfs.read_optional(path / "status") or "Unknown"
            if status != "Discharging":
                reasons.append(
                    f"{path.name} is {status} (on mains power: only a discharging battery "
                    "measures the laptop's power)"
                )
                continue
            source = _power_source(path)
            if source is None:
                reasons.append(f"{path.name} reports neither power_now nor current_now and voltage_now")
                continue
            supplies.append(BatterySupply(path.name, path, source))
        if not supplies:
            raise MeterUnavailable("battery", "; ".join(reasons))
        return cls(supplies)

    def _read_power_w(self) -> float:
        powers = [p for p in (s.power_w() for s in self.supplies) if not math.isnan(p)]
        return sum(powers) if powers else math.nan
