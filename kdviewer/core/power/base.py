"""The one interface every power meter implements, and the energy-per-window arithmetic.

A :class:`PowerMeter` turns a window of work (``with meter.measure() as m: ...``) into an
:class:`EnergyMeasurement`: total energy, the idle baseline (measured once, cached), the marginal
energy above that baseline (the cost of the work itself), and the method that produced the
figure. Two families share the arithmetic:

* :class:`CounterMeter`: the hardware (or the estimate) keeps a cumulative energy counter
  (RAPL ``energy_uj``, NVML total energy, process CPU time × watts). Energy over a window is the
  counter delta, read at the window's start and end and nowhere else: no thread and no sleep is
  added to the measured work. Windows that overlap (the student and the teacher measured at the
  same time) share the energy of each overlapping stretch equally, and the idle baseline of that
  stretch likewise, so neither waits for the other and neither is charged for both. A window
  shorter than the counter's update period gets a quantised figure, and its method says so.
  Counters that wrap are accumulated through wrap-around; a meter whose counter can wrap within
  a long window polls it from one background thread per meter, started with the first window.
* :class:`SampledMeter`: only an instantaneous power reading exists (battery fuel gauges, NVML
  power on older GPUs). Power is sampled during the window and integrated over time
  (trapezoids); with one reading it is that power × the window's duration.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

from kdviewer.core.errors import KdviewerError

log = logging.getLogger(__name__)

DEFAULT_IDLE_SECONDS = 0.3

# Indirections so tests can drive time deterministically (a fake clock whose sleep advances it).
_clock: Callable[[], float] = time.perf_counter
_sleep: Callable[[float], None] = time.sleep


class MeterUnavailable(KdviewerError):
    """A meter cannot be used on this machine; ``reason`` says why, for ``kdviewer info``."""

    def __init__(self, kind: str, reason: str):
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


@dataclass
class EnergyMeasurement:
    """Energy over one window of work, filled in when the ``measure()`` block exits.

    ``energy_j`` is the total over the window; ``marginal_energy_j`` is what lies above the idle
    baseline (``energy_j - idle_power_w * duration_s``, floored at 0 because sensor noise can put
    a tiny window below its baseline): the cost of the work itself. Every figure travels with
    ``method`` (how it was obtained) and ``is_estimate``; a figure with ``is_estimate`` set must
    never be shown as a measurement. Values are NaN until the window has closed, and stay NaN
    where the meter had no valid reading during the window (e.g. a battery that stopped
    discharging).
    """

    meter: str
    method: str
    is_estimate: bool
    idle_power_w: float
    duration_s: float = math.nan
    energy_j: float = math.nan
    marginal_energy_j: float = math.nan
    avg_power_w: float = math.nan
    cpu_time_s: float = math.nan  # process CPU time during the window, every meter records it
    domains_j: dict[str, float] = field(default_factory=dict)  # e.g. RAPL core/dram, per window
    readings: int = 0  # power samples (sampled meters) or counter reads used
    complete: bool = False

    @property
    def source(self) -> str:
        """``"estimate"`` or ``"measured (<meter>)"``: the word to put next to the number."""
        return "estimate" if self.is_estimate else f"measured ({self.meter})"

    def summary(self) -> str:
        """One line for logs and the CLI: marginal and total energy, the baseline and the method."""
        if not self.complete:
            return f"(window still open) [{self.method}]"
        return (
            f"{_fmt_j(self.marginal_energy_j)} above idle, {_fmt_j(self.energy_j)} total over "
            f"{self.duration_s * 1e3:.1f} ms (idle {self.idle_power_w:.2f} W, "
            f"avg {self.avg_power_w:.2f} W) [{self.method}]"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bench results, training logs)."""
        return asdict(self)


def _fmt_j(joules: float) -> str:
    if math.isnan(joules):
        return "n/a J"
    if abs(joules) < 1.0:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules:.3g} J"


class _Poller:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, interval: float, fn: Callable[[], None], name: str):
        self._interval = interval
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # a failed poll must not kill the measurement; the end read decides
                log.debug("power poll failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class _WindowEnergy:
    energy_j: float
    method: str
    domains_j: dict[str, float]
    readings: int
    charged_s: float | None = None  # the window's share of wall time when windows overlapped


class _Share:
    """What one open window of a :class:`CounterMeter` has been charged so far."""

    __slots__ = ("domains", "seconds", "most_open")

    def __init__(self) -> None:
        self.domains: dict[str, float] = {}
        self.seconds = 0.0
        self.most_open = 1  # the most windows open at once while this one was


class PowerMeter(ABC):
    """One source of power/energy figures. Subclasses: counter meters and sampled meters.

    Attributes every meter has: ``kind`` (registry key, e.g. ``"rapl"``), ``name`` (the sensor,
    e.g. ``"rapl:package-0"``, ``"battery:BAT0"``, ``"estimate"``), ``method`` (short label shown
    next to every figure) and ``is_estimate``.
    """

    kind: ClassVar[str] = ""

    def __init__(self, name: str, method: str, *, is_estimate: bool = False):
        self.name = name
        self.method = method
        self.is_estimate = is_estimate
        self._idle_lock = threading.Lock()
        self._idle_power_w: float | None = None
        self._idle_thread: threading.Thread | None = None
        self._notes: list[str] = []  # assumptions and caveats, shown by describe()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.method}>"

    def describe(self) -> str:
        """The meter, its method and every assumption behind its figures, as a paragraph."""
        lines = [f"Meter {self.name!r}: {self.method}."]
        if self.is_estimate:
            lines.append("This is an ESTIMATE, not a measurement.")
        lines.extend(self._notes)
        return " ".join(lines)

    # -- idle baseline ------------------------------------------------------------------------

    @property
    def idle_power_w(self) -> float:
        """The idle baseline in watts, measured on first use (``DEFAULT_IDLE_SECONDS``) and cached.

        NaN while a background measurement (:meth:`start_idle_measurement`) is still running: a
        measured inference then reports no marginal energy rather than waiting for the baseline.
        """
        with self._idle_lock:
            cached = self._idle_power_w
            pending = self._idle_thread is not None and self._idle_thread.is_alive()
        if cached is None:
            cached = math.nan if pending else self.measure_idle()
        return cached

    def start_idle_measurement(self, seconds: float = DEFAULT_IDLE_SECONDS) -> None:
        """Measure the idle baseline once in a background thread (at start-up), unless it is known
        or already being measured; :attr:`idle_power_w` is NaN until it is done."""
        with self._idle_lock:
            if self._idle_power_w is not None or self._idle_thread is not None:
                return
            self._idle_thread = threading.Thread(
                target=self._idle_in_background,
                args=(seconds,),
                name=f"{self.name} idle baseline",
                daemon=True,
            )
            self._idle_thread.start()

    def _idle_in_background(self, seconds: float) -> None:
        try:
            self.measure_idle(seconds)
        except Exception:  # a meter that fails here fails loudly in measure(); keep the app running
            log.warning("%s: idle baseline not measured", self.name, exc_info=True)
            with self._idle_lock:
                self._idle_power_w = math.nan

    def measure_idle(self, seconds: float = DEFAULT_IDLE_SECONDS) -> float:
        """(Re)measure the idle baseline by sleeping ``seconds`` under the meter; cache and return it.

        Call it while nothing else in the program is busy (e.g. at start-up, before the first
        inference); the result is reused by every later ``measure()``.
        """
        token = self._begin(shared=False)
        t0 = _clock()
        _sleep(seconds)
        t1 = _clock()
        window = self._end(token, t0, t1, idle_power_w=0.0)
        duration = t1 - t0
        idle = window.energy_j / duration if duration > 0 and not math.isnan(window.energy_j) else 0.0
        if math.isnan(window.energy_j):
            log.warning("%s: no valid reading while measuring idle power; baseline set to 0 W", self.name)
        with self._idle_lock:
            self._idle_power_w = idle
        log.debug("%s: idle baseline %.3f W over %.2f s", self.name, idle, duration)
        return idle

    # -- measurement --------------------------------------------------------------------------

    @contextmanager
    def measure(self) -> Iterator[EnergyMeasurement]:
        """Measure the energy of the ``with`` block; the yielded record is filled on exit.

        The idle baseline is measured first if it has not been yet and no background measurement
        is running (a one-off pause of ``DEFAULT_IDLE_SECONDS``). The record is filled even when the
        block raises.
        """
        idle = self.idle_power_w
        record = EnergyMeasurement(
            meter=self.name, method=self.method, is_estimate=self.is_estimate, idle_power_w=idle
        )
        cpu0 = time.process_time()
        token = self._begin()
        t0 = _clock()
        try:
            yield record
        finally:
            t1 = _clock()
            cpu1 = time.process_time()
            window = self._end(token, t0, t1, idle_power_w=idle)
            duration = t1 - t0
            record.duration_s = duration
            record.cpu_time_s = cpu1 - cpu0
            record.energy_j = window.energy_j
            record.method = window.method
            record.domains_j = window.domains_j
            record.readings = window.readings
            charged_s = duration if window.charged_s is None else window.charged_s
            record.marginal_energy_j = max(0.0, window.energy_j - idle * charged_s)
            if math.isnan(window.energy_j) or math.isnan(idle):
                record.marginal_energy_j = math.nan
            record.avg_power_w = window.energy_j / duration if duration > 0 else math.nan
            record.complete = True

    @abstractmethod
    def power_w(self) -> float:
        """A cheap current power figure in watts for a live plot (NaN when there is no reading)."""

    @abstractmethod
    def _begin(self, *, shared: bool = True) -> Any:
        """Start a window; return whatever :meth:`_end` needs. ``shared=False`` (the idle
        baseline) keeps the window out of the overlap accounting of measured work."""

    @abstractmethod
    def _end(self, token: Any, t0: float, t1: float, idle_power_w: float) -> _WindowEnergy:
        """Close a window that ran from ``t0`` to ``t1`` (``_clock`` seconds)."""


class CounterMeter(PowerMeter):
    """A meter backed by cumulative energy counters (one or more domains, in joules).

    Subclasses set ``primary`` (the domains summed into ``energy_j``), ``min_window_s`` (the counter's
    update period: shorter windows get a quantised figure, so labelled) and ``guard_interval_s`` (how
    often a long window is polled so that wrap-around is never missed; ``None`` for counters that do not
    wrap), implement :meth:`_read_j`, and call ``super().__init__`` last: it takes the first reading
    that :meth:`power_w` measures from.
    """

    primary: tuple[str, ...] = ()
    min_window_s: float = 0.0
    guard_interval_s: float | None = None

    def __init__(self, name: str, method: str, *, is_estimate: bool = False):
        super().__init__(name, method, is_estimate=is_estimate)
        self._power_lock = threading.Lock()
        self._last_power_read = (_clock(), self._primary_j(self._read_j()))
        self._last_power_w = math.nan
        self._ledger_lock = threading.Lock()
        self._open: dict[int, _Share] = {}
        self._last_event: tuple[float, dict[str, float]] | None = None
        self._guard: _Poller | None = None

    @abstractmethod
    def _read_j(self) -> dict[str, float]:
        """Cumulative energy per domain in joules (wrap-around already accumulated)."""

    def _primary_j(self, reading: dict[str, float]) -> float:
        return sum(reading[k] for k in self.primary)

    def power_w(self) -> float:
        """Average power since the previous call (or since the meter was made), from the counter."""
        with self._power_lock:
            now = _clock()
            energy = self._primary_j(self._read_j())
            t_prev, e_prev = self._last_power_read
            if now - t_prev < max(self.min_window_s, 1e-3):
                return self._last_power_w  # too soon for the counter to have moved meaningfully
            self._last_power_read = (now, energy)
            self._last_power_w = (energy - e_prev) / (now - t_prev)
            return self._last_power_w

    def _settle(self) -> None:
        """Read the counters and split what they moved since the last event among the open
        windows (caller holds ``_ledger_lock``)."""
        now, reading = _clock(), self._read_j()
        if self._open and self._last_event is not None:
            t_prev, prev = self._last_event
            k = len(self._open)
            for share in self._open.values():
                for d, v in reading.items():
                    if d in prev:
                        share.domains[d] = share.domains.get(d, 0.0) + (v - prev[d]) / k
                share.seconds += (now - t_prev) / k
        self._last_event = (now, reading)

    def _begin(self, *, shared: bool = True) -> Any:
        if self.guard_interval_s is not None and self._guard is None:
            with self._ledger_lock:
                if self._guard is None:  # one poller per meter, for windows longer than a wrap
                    self._guard = _Poller(self.guard_interval_s, self._read_j, f"{self.name} wrap guard")
        if not shared:
            return self._read_j(), None
        share = _Share()
        with self._ledger_lock:
            self._settle()
            self._open[id(share)] = share
            for other in self._open.values():
                other.most_open = max(other.most_open, len(self._open))
        return None, share

    def _end(self, token: Any, t0: float, t1: float, idle_power_w: float) -> _WindowEnergy:
        start, share = token
        charged = None
        if share is None:
            end = self._read_j()
            deltas = {k: end[k] - start[k] for k in end if k in start}
        else:
            with self._ledger_lock:
                self._settle()
                del self._open[id(share)]
            deltas, charged = dict(share.domains), share.seconds
        energy = self._primary_j(deltas) if all(k in deltas for k in self.primary) else math.nan
        method = self.method
        duration = t1 - t0
        if share is not None and share.most_open > 1:
            method += (
                f"; overlapped other measured work (up to {share.most_open} windows open): "
                "each shared stretch's energy and idle baseline split equally"
            )
        if duration < self.min_window_s:
            method += (
                f"; window {duration * 1e3:.2f} ms shorter than the counter's update period "
                f"{self.min_window_s * 1e3:.0f} ms: a quantised figure, right on average "
                "over many windows"
            )
        return _WindowEnergy(energy, method, deltas, readings=2, charged_s=charged)


class SampledMeter(PowerMeter):
    """A meter that only has an instantaneous power reading, integrated over time.

    Subclasses implement :meth:`_read_power_w` (NaN when there is no valid reading right now)
    and may set ``sample_interval_s`` (how often a window is sampled in the background).
    """

    sample_interval_s: float = 0.5

    @abstractmethod
    def _read_power_w(self) -> float:
        """Current power in watts, or NaN when the sensor has no valid reading now."""

    def power_w(self) -> float:
        """The sensor's current power reading in watts (NaN when there is none)."""
        return self._read_power_w()

    def _begin(self, *, shared: bool = True) -> Any:
        samples: list[tuple[float, float]] = [(_clock(), self._read_power_w())]
        lock = threading.Lock()

        def sample() -> None:
            p = self._read_power_w()
            with lock:
                samples.append((_clock(), p))

        poller = _Poller(self.sample_interval_s, sample, f"{self.name} sampler")
        return samples, lock, poller

    def _end(self, token: Any, t0: float, t1: float, idle_power_w: float) -> _WindowEnergy:
        samples, lock, poller = token
        poller.stop()
        with lock:
            samples.append((t1, self._read_power_w()))
            valid = [(t, p) for t, p in samples if not math.isnan(p)]
        duration = t1 - t0
        if not valid:
            return _WindowEnergy(math.nan, f"{self.method}; no valid reading during the window", {}, 0)
        if len(valid) == 1 or valid[-1][0] - valid[0][0] <= 0:
            mean_power = sum(p for _, p in valid) / len(valid)
        else:
            area = sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in pairwise(valid))
            mean_power = area / (valid[-1][0] - valid[0][0])
        method = self.method
        if len(valid) < len(samples):
            method = f"{self.method}; {len(samples) - len(valid)} of {len(samples)} readings invalid"
        return _WindowEnergy(mean_power * duration, method, {}, len(valid))


class WrappingCounter:
    """One hardware energy counter in µJ that wraps at ``max_range_uj``, accumulated in joules.

    Every :meth:`read` adds the wrapped delta since the previous read, so the total keeps growing
    through wrap-around as long as reads are less than one wrap period apart (the guard poller of
    :class:`CounterMeter` makes sure of that during long windows).
    """

    def __init__(self, read_uj: Callable[[], int], max_range_uj: int | None, label: str):
        self._read_uj = read_uj
        self.max_range_uj = max_range_uj
        self.label = label
        self._lock = threading.Lock()
        self._last_raw: int | None = None
        self._total_uj = 0

    def read(self) -> float:
        """Cumulative energy in joules since the first read (plus that read's raw value)."""
        with self._lock:
            raw = self._read_uj()
            if self._last_raw is None:
                self._total_uj = raw
            else:
                delta = raw - self._last_raw
                if delta < 0:
                    if self.max_range_uj:
                        delta += self.max_range_uj
                    else:
                        log.warning(
                            "%s: counter went backwards with no known range; counting from 0", self.label
                        )
                        delta = raw
                self._total_uj += delta
            self._last_raw = raw
            return self._total_uj / 1e6
