"""CPU package energy from RAPL counters (Linux): powercap ``intel-rapl`` zones, or AMD's hwmon.

Sources, first usable wins:

* ``<root>/sys/class/powercap/intel-rapl:N[:M]`` (Intel, and AMD Zen on Linux >= 5.8, whose
  RAPL MSRs the same ``intel_rapl`` driver exposes under the same names). Zones named
  ``package-N`` are summed into the energy figure; ``core``, ``uncore``, ``dram`` and ``psys``
  are reported per window in ``domains_j``. ``energy_uj`` wraps at ``max_energy_range_uj``.
  Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root only: that is the usual
  reason this meter is unavailable on a laptop, and the report says so.
* ``<root>/sys/class/hwmon/hwmonN`` named ``amd_energy`` or ``zenergy`` (AMD's out-of-tree
  drivers): ``energyK_input`` in µJ labelled ``EsocketN`` (package) / ``EcoreNNN`` (cores);
  these accumulate in 64 bits and do not wrap in practice.

RAPL updates its counters about every millisecond; a window shorter than ``min_window_s`` gets a
quantised figure, labelled so (see :class:`~kdviewer.core.power.base.CounterMeter`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from kdviewer.core.power import _sysfs
from kdviewer.core.power.base import CounterMeter, MeterUnavailable, WrappingCounter

log = logging.getLogger(__name__)

_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")  # intel-rapl-mmio duplicates package-N: skipped
_HWMON_DRIVERS = ("amd_energy", "zenergy")
# Guard poll period: the package counter wraps after max_energy_range_uj (~262 kJ on most parts,
# i.e. ~17 min at 250 W); polling every 60 s is far inside any wrap period seen in practice.
_GUARD_S = 60.0


@dataclass(frozen=True)
class RaplDomain:
    """One readable energy counter."""

    key: str  # "package-0", "package-0/core", "package-0/dram", "psys", "Esocket0"
    path: Path  # its energy file
    max_range_uj: int | None
    primary: bool  # summed into energy_j


def cpu_vendor(root: str | Path = "/") -> str:
    """``vendor_id`` from ``<root>/proc/cpuinfo`` (``GenuineIntel``, ``AuthenticAMD`` ...) or ``""``."""
    text = _sysfs.read_optional(Path(root) / "proc" / "cpuinfo") or ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "vendor_id":
            return value.strip()
    return ""


def _check_readable(path: Path) -> str | None:
    """``None`` if ``path`` holds an integer we can read, else the reason it does not."""
    try:
        _sysfs.read_int(path)
    except OSError as exc:
        return _sysfs.describe_os_error(path, exc)
    except ValueError:
        return f"{path}: not an integer"
    return None


def _powercap_domains(root: Path) -> tuple[list[RaplDomain], list[str]]:
    """Readable RAPL domains under powercap, and reasons for the ones that are not."""
    base = root / "sys" / "class" / "powercap"
    if not base.is_dir():
        raise MeterUnavailable(
            "rapl",
            f"{base} not present (no RAPL driver: virtual machine, "
            "non-x86 CPU, or intel_rapl_msr not loaded)",
        )
    zones: dict[tuple[int, int], Path] = {}  # (package, subzone or -1 for the package itself)
    for entry in base.iterdir():
        m = _ZONE.match(entry.name)
        if m:
            zones[(int(m.group(1)), -1 if m.group(2) is None else int(m.group(2)))] = entry
    if not zones:
        raise MeterUnavailable("rapl", f"{base} has no intel-rapl zones")
    names = {k: _sysfs.read_optional(p / "name") or p.name for k, p in zones.items()}
    domains, problems = [], []
    for (top, sub), path in sorted(zones.items()):
        name = names[(top, sub)]
        if sub == -1:
            key, primary = name, name.startswith("package")
        else:
            key, primary = f"{names.get((top, -1), f'zone-{top}')}/{name}", False
        energy = path / "energy_uj"
        problem = _check_readable(energy)
        if problem:
            problems.append(problem)
            continue
        try:
            max_range = _sysfs.read_int(path / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = None
            log.warning("%s: max_energy_range_uj unreadable; wrap-around cannot be corrected", path)
        domains.append(RaplDomain(key, energy, max_range, primary))
    return domains, problems


def _hwmon_domains(root: Path) -> list[RaplDomain]:
    base = root / "sys" / "class" / "hwmon"
    if not base.is_dir():
        return []
    domains = []
    for hw in sorted(base.iterdir()):
        if (_sysfs.read_optional(hw / "name") or "") not in _HWMON_DRIVERS:
            continue
        for label_file in sorted(hw.glob("energy*_label")):
            label = _sysfs.read_optional(label_file) or ""
            if not label.startswith("Esocket"):
                continue  # per-core counters would double-count the socket
            energy = hw / label_file.name.replace("_label", "_input")
            if _check_readable(energy) is None:
                domains.append(RaplDomain(label, energy, None, True))
    return domains


class RaplMeter(CounterMeter):
    """Package energy from RAPL counter deltas (sum over sockets)."""

    kind = "rapl"
    min_window_s = 0.01  # ~1 ms counter update period: 10 ms keeps quantisation under ~10 %
    guard_interval_s = _GUARD_S

    def __init__(
        self, domains: list[RaplDomain], *, source: str, amd: bool = False, skipped: list[str] | None = None
    ):
        primary = [d for d in domains if d.primary]
        if not primary:
            raise ValueError("RaplMeter needs at least one package domain")
        self.domains = list(domains)
        self.primary = tuple(d.key for d in primary)
        self._counters = {
            d.key: WrappingCounter(lambda p=d.path: _sysfs.read_int(p), d.max_range_uj, str(d.path))
            for d in domains
        }
        name = "rapl:" + "+".join(self.primary)
        vendor = " (AMD)" if amd else ""
        method = f"RAPL package counter{vendor}"
        super().__init__(name, method)
        self._notes = [
            f"Source: {source}.",
            "Counts the CPU package(s) only: not the display, disk, GPU or the rest of the board.",
            "Per-window deltas of other domains (core, dram, psys ...) are in domains_j: "
            + (", ".join(d.key for d in domains if not d.primary) or "none readable")
            + ".",
        ]
        if any(d.max_range_uj for d in domains):
            self._notes.append("Wrap-around at max_energy_range_uj is corrected.")
        if skipped:
            self._notes.append("Unreadable domains left out: " + "; ".join(skipped) + ".")

    @classmethod
    def probe(cls, root: str | Path = "/") -> RaplMeter:
        """A meter over every readable RAPL domain, or :class:`MeterUnavailable` saying why not."""
        root = Path(root)
        amd = cpu_vendor(root) in ("AuthenticAMD", "HygonGenuine")
        try:
            domains, problems = _powercap_domains(root)
        except MeterUnavailable as exc:
            hw = _hwmon_domains(root)
            if hw:
                return cls(hw, source="AMD energy counters (hwmon amd_energy/zenergy)", amd=True)
            raise MeterUnavailable("rapl", exc.reason + "; no amd_energy/zenergy hwmon sensor") from None
        if not any(d.primary for d in domains):
            hw = _hwmon_domains(root)
            if hw:
                return cls(hw, source="AMD energy counters (hwmon amd_energy/zenergy)", amd=True)
            detail = "; ".join(problems) if problems else "no package-N zone"
            hint = ""
            if any("permission denied" in p for p in problems):
                hint = (
                    " (energy_uj is readable by root only since Linux 5.10; run as root or grant "
                    "read access, e.g. with a udev rule)"
                )
            raise MeterUnavailable("rapl", f"package counter not readable: {detail}{hint}")
        return cls(domains, source="Linux powercap intel-rapl", amd=amd, skipped=problems)

    def _read_j(self) -> dict[str, float]:
        return {key: counter.read() for key, counter in self._counters.items()}
