"""Power meters against fake sysfs trees (the ``root`` parameter) and a fake clock.

Time is driven by :class:`FakeClock` (patched into ``kdviewer.core.power.base``): its ``sleep``
advances time and lets the fake hardware (RAPL counters, battery gauges) accrue energy, so every
figure is exact. Nothing here asserts on wall-clock time. The estimate's tests use the real
process CPU time and assert only on CPU time, never on elapsed time.

Permission denied: the tests run as root, for whom ``chmod 000`` does not stop a read. Instead
``kdviewer.core.power._sysfs.read_text`` (the single function every meter reads sysfs through) is
replaced by one that raises ``PermissionError`` for the chosen file, exactly as ``open`` does for
a non-root user on Linux >= 5.10. A ``chmod`` variant runs too, but only when not root.
"""

from __future__ import annotations

import math
import os
import sys
import time
import types
from pathlib import Path

import pytest

from kdviewer.core.power import (
    EstimateMeter,
    LinuxBatteryMeter,
    MacBatteryMeter,
    RaplMeter,
    WindowsBatteryMeter,
    _sysfs,
    base,
    match_tdp,
    meter_report,
    select_meter,
)
from kdviewer.core.power.base import MeterUnavailable, WrappingCounter
from kdviewer.core.power.macos import parse_ioreg
from kdviewer.core.power.windows import BatteryState

MAX_UJ = 262143328850  # a typical package max_energy_range_uj


# -- fakes -------------------------------------------------------------------------------------


class FakeClock:
    """Replaces base._clock/_sleep; ``sleep`` and ``advance`` run the registered loads."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.loads: list = []  # callables(seconds) that accrue energy while time passes

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for load in self.loads:
            load(seconds)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(base, "_clock", c)
    monkeypatch.setattr(base, "_sleep", c.sleep)
    monkeypatch.delenv("KDVIEWER_POWER_METER", raising=False)
    monkeypatch.delenv("KDVIEWER_TDP_W", raising=False)
    # Background samplers/guards must not add readings on their own during a test.
    monkeypatch.setattr(LinuxBatteryMeter, "sample_interval_s", 3600.0)
    monkeypatch.setattr(RaplMeter, "guard_interval_s", 3600.0)
    return c


def write(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    return path


def cpuinfo(root: Path, model: str, vendor: str = "GenuineIntel") -> None:
    write(root / "proc" / "cpuinfo", f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: {model}\n")


def rapl_zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    d = root / "sys" / "class" / "powercap" / zone
    write(d / "name", name)
    write(d / "max_energy_range_uj", max_uj)
    return write(d / "energy_uj", energy_uj)


def add_joules(path: Path, joules: float) -> None:
    """Advance a fake RAPL counter, wrapping at its zone's max_energy_range_uj."""
    max_uj = int((path.parent / "max_energy_range_uj").read_text())
    path.write_text(f"{(int(path.read_text()) + round(joules * 1e6)) % max_uj}\n")


def intel_tree(root: Path) -> dict[str, Path]:
    cpuinfo(root, "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    (root / "sys" / "class" / "powercap" / "intel-rapl").mkdir(parents=True)  # control type: no counter
    return {
        "package": rapl_zone(root, "intel-rapl:0", "package-0", 5_000_000),
        "core": rapl_zone(root, "intel-rapl:0:0", "core", 1_000_000),
        "dram": rapl_zone(root, "intel-rapl:0:1", "dram", 2_000_000, max_uj=65712999613),
    }


def battery(root: Path, name: str = "BAT0", status: str = "Discharging", **attrs) -> Path:
    d = root / "sys" / "class" / "power_supply" / name
    write(d / "type", "Battery")
    write(d / "status", status)
    for key, value in attrs.items():
        write(d / key, value)
    return d


def deny_reads(monkeypatch, suffix: str) -> None:
    """Make reads of files whose path ends with ``suffix`` fail with EACCES, as for non-root users."""
    real = _sysfs.read_text

    def read_text(path: Path) -> str:
        if str(path).endswith(suffix):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(_sysfs, "read_text", read_text)


# -- RAPL ----------------------------------------------------------------------------------------


def test_rapl_is_chosen_and_measures_counter_deltas(tmp_path, clock):
    files = intel_tree(tmp_path)
    clock.loads.append(lambda s: (add_joules(files["package"], 4.0 * s), add_joules(files["dram"], 1.0 * s)))

    meter = select_meter(tmp_path)
    assert isinstance(meter, RaplMeter)
    assert meter.name == "rapl:package-0"
    assert meter.method == "RAPL package counter"
    assert not meter.is_estimate
    assert meter.measure_idle(0.5) == pytest.approx(4.0)

    with meter.measure() as m:
        add_joules(files["package"], 30.0)  # the work: 30 J on top of idle
        add_joules(files["core"], 20.0)
        clock.advance(2.0)  # idle keeps accruing: 4 W package, 1 W dram
    assert m.complete and not m.is_estimate
    assert m.duration_s == pytest.approx(2.0)
    assert m.energy_j == pytest.approx(38.0)
    assert m.idle_power_w == pytest.approx(4.0)
    assert m.marginal_energy_j == pytest.approx(30.0)
    assert m.avg_power_w == pytest.approx(19.0)
    assert m.domains_j == pytest.approx({"package-0": 38.0, "package-0/core": 20.0, "package-0/dram": 2.0})
    assert m.method == "RAPL package counter" and m.meter == "rapl:package-0"
    assert m.source == "measured (rapl:package-0)"
    assert "RAPL package counter" in m.summary()


def test_rapl_idle_is_measured_once_and_cached(tmp_path, clock):
    files = intel_tree(tmp_path)
    clock.loads.append(lambda s: add_joules(files["package"], 5.0 * s))
    meter = RaplMeter.probe(tmp_path)
    with meter.measure():  # first use measures the baseline (one fake sleep)
        clock.advance(1.0)
    t = clock.t
    with meter.measure() as m:
        clock.advance(1.0)
    assert clock.t == t + 1.0  # no second idle pause
    assert m.idle_power_w == pytest.approx(5.0) and m.marginal_energy_j == pytest.approx(0.0)
    clock.loads[:] = [lambda s: add_joules(files["package"], 7.0 * s)]
    assert meter.measure_idle(0.2) == pytest.approx(7.0)  # refreshable
    assert meter.idle_power_w == pytest.approx(7.0)


def test_rapl_counter_wraps_around_max_energy_range(tmp_path, clock):
    cpuinfo(tmp_path, "Intel(R) Xeon(R) Gold 6248 CPU")
    pkg = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    meter = select_meter(tmp_path)
    meter.measure_idle(0.1)  # counter still: 0 W
    with meter.measure() as m:
        add_joules(pkg, 5.0)  # 999 J -> wraps past 1000 J -> 4 J
        clock.advance(1.0)
    assert int(pkg.read_text()) == 4_000_000
    assert m.energy_j == pytest.approx(5.0)
    assert m.marginal_energy_j == pytest.approx(5.0)


def test_wrapping_counter_accumulates_through_several_wraps():
    raw = iter([900, 100, 600, 50])
    counter = WrappingCounter(lambda: next(raw), max_range_uj=1000, label="test")
    totals = [counter.read() for _ in range(4)]
    assert [round(t * 1e6) for t in totals] == [900, 1100, 1600, 2050]  # +200, +500, +450


def test_rapl_short_window_is_read_as_is_and_labelled_quantised(tmp_path, clock):
    """No sleep is added to a window shorter than the counter period: its delta is the figure."""
    files = intel_tree(tmp_path)
    clock.loads.append(lambda s: add_joules(files["package"], 5.0 * s))
    meter = RaplMeter.probe(tmp_path)
    meter.measure_idle(0.5)
    t_before = clock.t
    with meter.measure() as m:
        add_joules(files["package"], 0.1)
        clock.advance(0.004)  # 4 ms < 10 ms counter period
    assert clock.t - t_before == pytest.approx(0.004)  # nothing slept after the window
    assert m.duration_s == pytest.approx(0.004)
    assert m.energy_j == pytest.approx(0.1 + 5.0 * 0.004)
    assert m.marginal_energy_j == pytest.approx(0.1)
    assert "update period" in m.method and "quantised" in m.method


def test_overlapping_windows_share_the_overlap(tmp_path, clock):
    """Two measured windows open at once (student and teacher) are each charged half of what the
    counter moved while both were open, and half of the idle baseline over that stretch."""
    files = intel_tree(tmp_path)
    clock.loads.append(lambda s: add_joules(files["package"], 2.0 * s))  # 2 W idle
    meter = RaplMeter.probe(tmp_path)
    meter.measure_idle(0.5)
    teacher = meter.measure()
    t_rec = teacher.__enter__()
    add_joules(files["package"], 1.0)
    clock.advance(0.1)  # teacher alone: 1 J of work + 0.2 J idle
    student = meter.measure()
    s_rec = student.__enter__()
    add_joules(files["package"], 0.6)
    clock.advance(0.05)  # both open: 0.6 J of work + 0.1 J idle, split in two
    student.__exit__(None, None, None)
    add_joules(files["package"], 0.4)
    clock.advance(0.1)  # teacher alone again: 0.4 J + 0.2 J idle
    teacher.__exit__(None, None, None)
    assert s_rec.energy_j == pytest.approx(0.35)
    assert s_rec.marginal_energy_j == pytest.approx(0.3)
    assert t_rec.energy_j == pytest.approx(1.2 + 0.35 + 0.6)
    assert t_rec.marginal_energy_j == pytest.approx(1.0 + 0.3 + 0.4)
    assert "overlapped" in s_rec.method and "overlapped" in t_rec.method
    with meter.measure() as alone:
        clock.advance(0.1)
    assert "overlapped" not in alone.method and alone.marginal_energy_j == pytest.approx(0.0)


def test_idle_baseline_measured_in_the_background_never_blocks_a_window(tmp_path):
    """While the background baseline runs, a window completes at once with no marginal figure."""
    import threading

    files = intel_tree(tmp_path)
    meter = RaplMeter.probe(tmp_path)
    release = threading.Event()
    started = threading.Event()

    def slow_idle(seconds=0.3):
        started.set()
        release.wait(30)
        with meter._idle_lock:
            meter._idle_power_w = 3.0
        return 3.0

    meter.measure_idle = slow_idle
    meter.start_idle_measurement()
    assert started.wait(10)
    with meter.measure() as m:
        add_joules(files["package"], 0.2)
    assert m.complete and m.energy_j == pytest.approx(0.2, abs=0.05)
    assert math.isnan(m.idle_power_w) and math.isnan(m.marginal_energy_j)
    release.set()
    meter._idle_thread.join(10)
    with meter.measure() as m2:
        pass
    assert m2.idle_power_w == 3.0


def test_rapl_package_permission_denied_falls_back_and_says_why(tmp_path, clock, monkeypatch):
    intel_tree(tmp_path)
    deny_reads(monkeypatch, "intel-rapl:0/energy_uj")
    meter = select_meter(tmp_path)
    assert isinstance(meter, EstimateMeter) and meter.is_estimate
    rapl = next(s for s in meter_report(tmp_path) if s.kind == "rapl")
    assert not rapl.available and not rapl.chosen
    assert "permission denied" in rapl.reason and "intel-rapl:0/energy_uj" in rapl.reason
    assert "root" in rapl.reason  # the hint about Linux >= 5.10
    with pytest.raises(MeterUnavailable, match="permission denied"):
        RaplMeter.probe(tmp_path)


def test_rapl_secondary_domain_denied_keeps_package(tmp_path, clock, monkeypatch):
    intel_tree(tmp_path)
    deny_reads(monkeypatch, "intel-rapl:0:1/energy_uj")
    meter = select_meter(tmp_path)
    assert isinstance(meter, RaplMeter)
    assert [d.key for d in meter.domains] == ["package-0", "package-0/core"]
    assert "Unreadable domains left out" in meter.describe() and "permission denied" in meter.describe()


def test_rapl_energy_file_that_cannot_be_read_at_all(tmp_path, clock):
    cpuinfo(tmp_path, "Intel(R) Core(TM) i7-8650U")
    zone = tmp_path / "sys" / "class" / "powercap" / "intel-rapl:0"
    write(zone / "name", "package-0")
    (zone / "energy_uj").mkdir()  # reading a directory fails for root too
    reason = next(s for s in meter_report(tmp_path) if s.kind == "rapl").reason
    assert "cannot be read" in reason
    assert isinstance(select_meter(tmp_path), EstimateMeter)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads mode-000 files anyway")
def test_rapl_permission_denied_by_file_mode(tmp_path, clock):
    files = intel_tree(tmp_path)
    files["package"].chmod(0)
    assert "permission denied" in next(s for s in meter_report(tmp_path) if s.kind == "rapl").reason


def test_rapl_on_amd_through_intel_rapl_powercap(tmp_path, clock):
    cpuinfo(tmp_path, "AMD Ryzen 7 5800U with Radeon Graphics", vendor="AuthenticAMD")
    pkg = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 10)
    core = rapl_zone(tmp_path, "intel-rapl:0:0", "core", 10)
    meter = select_meter(tmp_path)
    assert meter.name == "rapl:package-0"
    assert meter.method == "RAPL package counter (AMD)"
    meter.measure_idle(0.1)
    with meter.measure() as m:
        add_joules(pkg, 3.0)
        add_joules(core, 2.0)
        clock.advance(1.0)
    assert m.energy_j == pytest.approx(3.0) and m.domains_j["package-0/core"] == pytest.approx(2.0)


def test_rapl_from_amd_energy_hwmon_socket_counter(tmp_path, clock):
    cpuinfo(tmp_path, "AMD EPYC 7742 64-Core Processor", vendor="AuthenticAMD")
    hw = tmp_path / "sys" / "class" / "hwmon" / "hwmon3"
    write(hw / "name", "amd_energy")
    write(hw / "energy1_label", "Ecore000")
    write(hw / "energy1_input", 123)
    write(hw / "energy65_label", "Esocket0")
    sock = write(hw / "energy65_input", 1_000_000)
    meter = select_meter(tmp_path)
    assert isinstance(meter, RaplMeter) and meter.name == "rapl:Esocket0" and "AMD" in meter.method
    meter.measure_idle(0.1)
    with meter.measure() as m:
        sock.write_text("4000000\n")
        clock.advance(1.0)
    assert m.energy_j == pytest.approx(3.0)


def test_rapl_power_w_is_counter_rate_since_previous_call(tmp_path, clock):
    files = intel_tree(tmp_path)
    meter = RaplMeter.probe(tmp_path)
    add_joules(files["package"], 14.0)
    clock.advance(2.0)
    assert meter.power_w() == pytest.approx(7.0)
    add_joules(files["package"], 3.0)
    clock.advance(1.0)
    assert meter.power_w() == pytest.approx(3.0)


# -- Linux battery -------------------------------------------------------------------------------


def test_battery_power_now_while_discharging(tmp_path, clock):
    bat = battery(tmp_path, power_now=10_000_000)
    write(tmp_path / "sys" / "class" / "power_supply" / "AC" / "type", "Mains")
    meter = select_meter(tmp_path)
    assert isinstance(meter, LinuxBatteryMeter)
    assert meter.name == "battery:BAT0"
    assert meter.method == "battery discharge power (power_now)"
    assert not meter.is_estimate
    assert meter.power_w() == pytest.approx(10.0)
    assert meter.measure_idle(0.3) == pytest.approx(10.0)
    write(bat / "power_now", 22_500_000)
    with meter.measure() as m:
        clock.advance(2.0)
    assert m.energy_j == pytest.approx(45.0)
    assert m.marginal_energy_j == pytest.approx(25.0)
    assert m.avg_power_w == pytest.approx(22.5)
    assert m.method == "battery discharge power (power_now)" and m.readings == 2


def test_battery_current_times_voltage(tmp_path, clock):
    battery(tmp_path, current_now=-1_500_000, voltage_now=12_000_000)  # some gauges sign the current
    meter = select_meter(tmp_path)
    assert meter.method == "battery discharge power (current_now × voltage_now)"
    assert meter.power_w() == pytest.approx(18.0)
    meter.measure_idle(0.1)
    with meter.measure() as m:
        clock.advance(0.5)
    assert m.energy_j == pytest.approx(9.0) and m.marginal_energy_j == pytest.approx(0.0)


def test_battery_samples_are_integrated_over_the_window(tmp_path, clock):
    bat = battery(tmp_path, power_now=10_000_000)
    meter = LinuxBatteryMeter.probe(tmp_path)
    meter.measure_idle(0.1)
    with meter.measure() as m:
        clock.advance(1.0)
        write(bat / "power_now", 30_000_000)  # the gauge's next refresh
    assert m.energy_j == pytest.approx(20.0)  # trapezoid between 10 W and 30 W over 1 s


@pytest.mark.parametrize("status", ["Charging", "Full", "Not charging"])
def test_battery_not_used_unless_discharging(tmp_path, clock, status):
    cpuinfo(tmp_path, "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    battery(tmp_path, status=status, power_now=25_000_000)
    meter = select_meter(tmp_path)
    assert isinstance(meter, EstimateMeter)
    report = {s.kind: s for s in meter_report(tmp_path)}
    assert not report["battery"].available and status in report["battery"].reason
    assert report["estimate"].chosen


def test_battery_that_starts_charging_gives_no_figure(tmp_path, clock):
    bat = battery(tmp_path, power_now=10_000_000)
    meter = LinuxBatteryMeter.probe(tmp_path)
    meter.measure_idle(0.1)
    write(bat / "status", "Charging")
    assert math.isnan(meter.power_w())
    with meter.measure() as m:
        clock.advance(1.0)
    assert math.isnan(m.energy_j) and math.isnan(m.marginal_energy_j)
    assert "no valid reading" in m.method and "n/a" in m.summary()


def test_peripheral_battery_is_ignored(tmp_path, clock):
    mouse = battery(tmp_path, name="hidpp_battery_0", power_now=1_000_000)
    write(mouse / "scope", "Device")
    reason = next(s for s in meter_report(tmp_path) if s.kind == "battery").reason
    assert reason.startswith("none found")


def test_two_discharging_batteries_are_summed(tmp_path, clock):
    battery(tmp_path, "BAT0", power_now=6_000_000)
    battery(tmp_path, "BAT1", current_now=500_000, voltage_now=12_000_000)
    meter = select_meter(tmp_path)
    assert meter.name == "battery:BAT0+BAT1"
    assert meter.power_w() == pytest.approx(12.0)


def test_rapl_comes_before_battery(tmp_path, clock):
    intel_tree(tmp_path)
    battery(tmp_path, power_now=10_000_000)
    assert isinstance(select_meter(tmp_path), RaplMeter)
    report = {s.kind: s for s in meter_report(tmp_path)}
    assert report["rapl"].chosen and report["battery"].available and not report["battery"].chosen
    assert "rapl:package-0 comes first" in report["battery"].reason


# -- preference ----------------------------------------------------------------------------------


def test_prefer_overrides_the_order(tmp_path, clock, monkeypatch):
    intel_tree(tmp_path)
    battery(tmp_path, power_now=10_000_000)
    assert isinstance(select_meter(tmp_path, prefer="battery"), LinuxBatteryMeter)
    assert isinstance(select_meter(tmp_path, prefer="estimate"), EstimateMeter)
    monkeypatch.setenv("KDVIEWER_POWER_METER", "estimate")
    assert isinstance(select_meter(tmp_path), EstimateMeter)
    assert isinstance(select_meter(tmp_path, prefer="rapl"), RaplMeter)  # the argument wins
    monkeypatch.setenv("KDVIEWER_POWER_METER", "no-such-meter")
    assert isinstance(select_meter(tmp_path), RaplMeter)  # bad env value: logged, ignored
    with pytest.raises(ValueError, match="unknown power meter"):
        select_meter(tmp_path, prefer="no-such-meter")


def test_unavailable_preference_falls_back_and_is_reported(tmp_path, clock):
    intel_tree(tmp_path)
    assert isinstance(select_meter(tmp_path, prefer="battery"), RaplMeter)
    chosen = next(s for s in meter_report(tmp_path, prefer="battery") if s.chosen)
    assert chosen.kind == "rapl" and "preferred battery" in chosen.reason


# -- the estimate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "per_core_w"),
    [
        ("Apple M1", 20 / 8),
        ("Apple M1 Pro", 30 / 10),
        ("Apple M3", 22 / 8),
        ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", 15 / 4),
        ("Intel(R) Core(TM) i7-1065G7 CPU @ 1.30GHz", 15 / 4),
        ("Intel(R) Core(TM) i7-10750H CPU @ 2.60GHz", 45 / 6),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 65 / 6),
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 150 / 20),
        ("AMD Ryzen 7 5800U with Radeon Graphics", 15 / 8),
        ("AMD Ryzen 9 5900X 12-Core Processor", 105 / 8),
        ("AMD EPYC 7742 64-Core Processor", 225 / 64),
    ],
)
def test_tdp_model_table(tmp_path, model, per_core_w):
    assert match_tdp(model) is not None
    cpuinfo(tmp_path, model)
    meter = EstimateMeter(tmp_path)
    assert meter.cpu == model
    assert meter.per_core_w == pytest.approx(per_core_w)
    assert f"{per_core_w:.2f} W/core" in meter.method


def test_estimate_label_says_estimate_and_its_assumptions(tmp_path, clock):
    cpuinfo(tmp_path, "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    meter = select_meter(tmp_path)  # no RAPL, no battery under this root
    assert isinstance(meter, EstimateMeter)
    assert meter.name == "estimate" and meter.is_estimate
    assert meter.method.startswith("estimate: CPU time × 3.75 W/core (TDP model: 15 W / 4 cores")
    assert "i7-8650U" in meter.method
    text = meter.describe()
    for words in ("ESTIMATE", "CPU time", "TDP / physical cores", "Not counted", "0 W by construction"):
        assert words in text
    with meter.measure() as m:
        pass
    assert m.is_estimate and m.source == "estimate" and m.method.startswith("estimate:")
    assert m.idle_power_w == 0.0


def test_estimate_default_and_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("KDVIEWER_TDP_W", raising=False)
    cpuinfo(tmp_path, "Mystery CPU 9000")
    meter = EstimateMeter(tmp_path)
    assert meter.per_core_w == pytest.approx(15 / 4)
    assert "not in the TDP table" in meter.describe() and "default" in meter.method
    cpuinfo(tmp_path, "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    assert EstimateMeter(tmp_path, tdp_w=25).per_core_w == pytest.approx(25 / 4)
    assert select_meter(tmp_path, tdp_w=25).per_core_w == pytest.approx(25 / 4)
    monkeypatch.setenv("KDVIEWER_TDP_W", "45")
    assert EstimateMeter(tmp_path).per_core_w == pytest.approx(45 / 4)
    assert "TDP set by the user" in EstimateMeter(tmp_path).method
    with pytest.raises(ValueError):
        EstimateMeter(tmp_path, tdp_w=-1)


def _burn_cpu(seconds: float) -> None:
    """Busy until this process has used ``seconds`` more CPU time (not wall time)."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += sum(range(200))


def test_estimate_energy_of_busy_loop_is_positive_and_scales_with_cpu_time(tmp_path):
    meter = EstimateMeter(tmp_path, model="Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    with meter.measure() as short:
        _burn_cpu(0.05)
    with meter.measure() as long:
        _burn_cpu(0.15)
    assert short.energy_j > 0
    assert long.energy_j > short.energy_j
    for m in (short, long):
        assert m.energy_j == pytest.approx(m.cpu_time_s * 3.75, rel=0.02, abs=1e-3)
        assert m.marginal_energy_j == m.energy_j  # idle baseline 0 W by construction


def test_estimate_is_not_watts_times_wall_time(tmp_path):
    meter = EstimateMeter(tmp_path, model="Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    with meter.measure() as m:
        time.sleep(0.05)  # wall time passes, CPU time (almost) does not
    assert m.energy_j < 0.5 * 3.75 * m.duration_s


def test_estimate_power_w_follows_cpu_use(tmp_path):
    meter = EstimateMeter(tmp_path, model="Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz")
    meter.power_w()
    _burn_cpu(0.05)
    assert 0 < meter.power_w() <= 3.75 * (os.cpu_count() or 1) * 1.05


def test_measurement_is_filled_when_the_block_raises(tmp_path):
    meter = EstimateMeter(tmp_path, model="Apple M1")
    with pytest.raises(RuntimeError), meter.measure() as m:
        raise RuntimeError("inference failed")
    assert m.complete and not math.isnan(m.energy_j)


# -- this machine --------------------------------------------------------------------------------


def _host_has_sensors() -> bool:
    supplies = Path("/sys/class/power_supply")
    has_battery = supplies.is_dir() and any(
        (p / "type").is_file() and (p / "type").read_text().strip() == "Battery" for p in supplies.iterdir()
    )
    return Path("/sys/class/powercap").exists() or has_battery or sys.platform != "linux"


@pytest.mark.skipif(_host_has_sensors(), reason="this host has RAPL or a battery")
def test_this_machine_uses_the_estimate_and_says_why(monkeypatch):
    monkeypatch.delenv("KDVIEWER_POWER_METER", raising=False)
    meter = select_meter()
    assert isinstance(meter, EstimateMeter) and meter.is_estimate and "estimate" in meter.method
    report = {s.kind: s for s in meter_report()}
    assert [k for k, s in report.items() if s.chosen] == ["estimate"]
    assert not report["rapl"].available and "/sys/class/powercap" in report["rapl"].reason
    assert not report["battery"].available and "power_supply" in report["battery"].reason
    assert report["macos-battery"].reason == "not macOS" and report["windows-battery"].reason == "not Windows"
    assert all(str(s).startswith(("* ", "  ")) for s in report.values())


# -- NVML (fake pynvml) --------------------------------------------------------------------------


def fake_pynvml(energy_counter: bool = True) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    state = {"mj": 1_000_000}
    nvml.NVMLError = NVMLError
    nvml.state = state
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    nvml.nvmlDeviceGetName = lambda h: b"Fake GPU"
    nvml.nvmlDeviceGetPowerUsage = lambda h: 150_000

    def energy(handle):
        if not energy_counter:
            raise NVMLError("Not Supported")
        return state["mj"]

    nvml.nvmlDeviceGetTotalEnergyConsumption = energy
    return nvml


def test_nvml_energy_counter_for_gpu_work(tmp_path, clock, monkeypatch):
    nvml = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = select_meter(tmp_path, gpu=True)
    assert meter.name == "nvml:0" and meter.method == "NVML GPU energy counter (Fake GPU)"
    meter.measure_idle(0.2)
    with meter.measure() as m:
        nvml.state["mj"] += 250_000
        clock.advance(1.0)
    assert m.energy_j == pytest.approx(250.0) and not m.is_estimate
    # For CPU work the GPU meter is listed but not used.
    assert isinstance(select_meter(tmp_path), EstimateMeter)
    status = next(s for s in meter_report(tmp_path) if s.kind == "nvml")
    assert status.available and not status.chosen and "GPU only" in status.reason


def test_nvml_meter_for_another_gpu(tmp_path, clock, monkeypatch):
    nvml = fake_pynvml()
    nvml.nvmlDeviceGetCount = lambda: 4
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert select_meter(tmp_path, gpu=True, gpu_index=3).name == "nvml:3"
    # a GPU that does not exist is reported, and the choice falls back to a CPU meter
    assert isinstance(select_meter(tmp_path, gpu=True, gpu_index=7), EstimateMeter)


def test_nvml_power_sampling_without_energy_counter(tmp_path, clock, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy_counter=False))
    meter = select_meter(tmp_path, prefer="nvml")
    assert meter.method == "NVML GPU power × time (Fake GPU)" and meter.power_w() == pytest.approx(150.0)


def test_nvml_without_pynvml_is_unavailable(tmp_path, clock, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    meter = select_meter(tmp_path, gpu=True)
    assert isinstance(meter, EstimateMeter)
    status = next(s for s in meter_report(tmp_path, gpu=True) if s.kind == "nvml")
    assert not status.available and "pynvml not installed" in status.reason


# -- macOS and Windows (documented interfaces, fake sources) ----------------------------------

IOREG = """+-o AppleSmartBattery  <class AppleSmartBattery, id 0x100000254, registered, matched, active>
    {
      "TimeRemaining" = 345
      "InstantAmperage" = 18446744073709550116
      "ExternalConnected" = No
      "Amperage" = 18446744073709550616
      "Voltage" = 12000
      "IsCharging" = No
    }
"""


def test_macos_battery_from_ioreg_text(clock):
    assert parse_ioreg(IOREG)["Voltage"] == "12000"
    meter = MacBatteryMeter.probe(platform="darwin", runner=lambda: IOREG)
    assert meter.power_w() == pytest.approx(1.5 * 12.0)  # InstantAmperage -1500 mA × 12 V
    assert "Untested" in meter.describe() and not meter.is_estimate
    on_mains = IOREG.replace('"ExternalConnected" = No', '"ExternalConnected" = Yes')
    with pytest.raises(MeterUnavailable, match="mains"):
        MacBatteryMeter.probe(platform="darwin", runner=lambda: on_mains)
    with pytest.raises(MeterUnavailable, match="not macOS"):
        MacBatteryMeter.probe(platform="linux", runner=lambda: IOREG)


def test_windows_battery_discharge_rate(clock):
    state = BatteryState(
        ac_online=False, battery_present=True, charging=False, discharging=True, rate_mw=-14500
    )
    meter = WindowsBatteryMeter.probe(platform="win32", query=lambda: state)
    assert meter.power_w() == pytest.approx(14.5) and "Untested" in meter.describe()
    charging = BatteryState(True, True, True, False, 20000)
    with pytest.raises(MeterUnavailable, match="mains"):
        WindowsBatteryMeter.probe(platform="win32", query=lambda: charging)
    with pytest.raises(MeterUnavailable, match="not Windows"):
        WindowsBatteryMeter.probe(platform="linux", query=lambda: state)


def test_a_probe_that_crashes_is_reported_not_raised(tmp_path, clock, monkeypatch):
    def broken(root):
        raise OSError("sensor driver fell over")

    monkeypatch.setattr(RaplMeter, "probe", broken)
    assert isinstance(select_meter(tmp_path), EstimateMeter)
    rapl = next(s for s in meter_report(tmp_path) if s.kind == "rapl")
    assert not rapl.available and "probe failed" in rapl.reason and "fell over" in rapl.reason
