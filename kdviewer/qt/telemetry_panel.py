"""Live latency and power: rolling plots polled on a timer from each engine's telemetry."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import deque
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdviewer.core.telemetry import write_samples_csv
from kdviewer.qt.scores_panel import ROLE_COLORS, ROLE_TITLES, ROLES

log = logging.getLogger(__name__)

HISTORY = 200
STAGES = ("preprocess", "forward", "heatmap")
STAGE_STYLES = {
    "preprocess": Qt.PenStyle.DotLine,
    "forward": Qt.PenStyle.DashLine,
    "heatmap": Qt.PenStyle.DashDotLine,
}
SUMMARY_ROWS = (  # key, row name, tooltip
    ("latency", "latency", "median latency per inference, last 20 inferences"),
    ("stages", "pre/fwd/cam", "median preprocess / forward / heat-map time, last 20 inferences"),
    ("power", "power", "median power while inferring, last 20 inferences"),
    ("energy", "energy", "median energy per inference above idle, last 20 inferences"),
)


def method_label(method: str | None, is_estimate: bool) -> str:
    """How a power figure was obtained, never passing an estimate off as a measurement."""
    if not method:
        return "not measured"
    return f"{method} (estimate)" if is_estimate else f"{method} (measured)"


def _median(values) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else None


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


class _CompactPlot(pg.PlotWidget):
    """A plot that asks for little height: three of them and the summary fit a laptop's side panel,
    and they grow when there is room (pyqtgraph's default asks for 480 px each)."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(240, 80)


class TelemetryPanel(QWidget):
    """Polls engine telemetry (thread-safe buffers) and draws the recent inferences."""

    samples_polled = Signal(int)  # how many new samples the last poll found

    def __init__(self, interval_ms: int = 500, parent=None):
        super().__init__(parent)
        self.setObjectName("telemetryPanel")
        self._engines: dict[str, object] = {}
        self._last_t: dict[str, float] = {}
        self._samples: dict[str, deque] = {r: deque(maxlen=HISTORY) for r in ROLES}
        self._t0 = time.monotonic()
        self.paused = False

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(4)
        head = QHBoxLayout()  # the dock's title says "Latency and power"
        head.addStretch(1)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self.ask_export)
        head.addWidget(self.pause_button)
        head.addWidget(self.export_button)
        layout.addLayout(head)

        self.latency_plot = self._make_plot("Latency per inference", "ms")
        self.power_plot = self._make_plot("Power", "W")
        self.energy_plot = self._make_plot("Energy per inference", "mJ", time_axis=True)
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for role in ROLES:
            color = ROLE_COLORS[role]
            title_ = ROLE_TITLES[role]
            self.curves[(role, "total")] = self.latency_plot.plot(
                pen=pg.mkPen(color, width=2),
                name=f"{title_} total",
                symbol="o",
                symbolSize=4,
                symbolBrush=color,
                symbolPen=None,
            )
            for stage in STAGES:
                self.curves[(role, stage)] = self.latency_plot.plot(
                    pen=pg.mkPen(color, width=1, style=STAGE_STYLES[stage]), name=f"{title_} {stage}"
                )
            for kind, plot in (("power", self.power_plot), ("energy", self.energy_plot)):
                self.curves[(role, kind)] = plot.plot(
                    pen=pg.mkPen(color, width=2),
                    name=title_,
                    symbol="o",
                    symbolSize=4,
                    symbolBrush=color,
                    symbolPen=None,
                )
        for plot in (self.latency_plot, self.power_plot, self.energy_plot):
            layout.addWidget(plot, 1)

        # One row per figure and one column per model: narrow enough for a laptop's side panel
        # (a column per figure collided at 1366 px).
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(1)
        self.summary: dict[tuple[str, str], QLabel] = {}
        for c, role in enumerate(ROLES + ("ratio",), start=1):
            name = "T / S" if role == "ratio" else ROLE_TITLES[role]
            color = "#e8eaed" if role == "ratio" else ROLE_COLORS[role]
            head = QLabel(f"<span style='color:{color}; font-weight:600'>{name}</span>")
            if role == "ratio":
                head.setToolTip("teacher / student")
            grid.addWidget(head, 0, c)
        for r, (key, name, tip) in enumerate(SUMMARY_ROWS, start=1):
            lab = QLabel(name)
            lab.setObjectName("hint")
            lab.setToolTip(tip)
            grid.addWidget(lab, r, 0)
            for c, role in enumerate(ROLES + ("ratio",), start=1):
                value = QLabel("—")
                value.setObjectName("metric")
                self.summary[(role, key)] = value
                grid.addWidget(value, r, c)
        grid.setColumnStretch(4, 1)
        layout.addLayout(grid)
        self.method_label = QLabel("Power: not measured yet")
        self.method_label.setObjectName("hint")
        self.method_label.setWordWrap(True)
        layout.addWidget(self.method_label)

    def _make_plot(self, title: str, unit: str, time_axis: bool = False) -> pg.PlotWidget:
        plot = _CompactPlot()
        plot.setObjectName(f"plot_{unit}")
        plot.setTitle(f"<span style='color:#bdc1c6; font-size:9pt'>{title} ({unit})</span>")
        plot.showGrid(x=True, y=True, alpha=0.15)
        if time_axis:
            plot.setLabel("bottom", "time since start", units="s")
        plot.setMinimumHeight(72)
        plot.getPlotItem().getAxis("left").setWidth(40)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.getPlotItem().setMenuEnabled(False)
        return plot

    # -- sources ----------------------------------------------------------------------------------
    def set_engine(self, role: str, engine) -> None:
        """Start polling ``engine.telemetry`` (``since(t)`` returns samples after ``t``)."""
        self._engines[role] = engine
        self._last_t.setdefault(role, float("-inf"))
        if not self.timer.isActive() and not self.paused:
            self.timer.start()

    def set_paused(self, on: bool) -> None:
        self.paused = bool(on)
        self.pause_button.setText("Resume" if on else "Pause")
        self.pause_button.setChecked(on)
        if on:
            self.timer.stop()
        elif self._engines:
            self.timer.start()
            self.poll()

    def stop(self) -> None:
        self.timer.stop()

    def _last_idle(self, role: str) -> float | None:
        """The idle baseline (W) of the role's latest measured inference, if any."""
        for sample in reversed(self._samples.get(role, ())):
            if sample.idle_power_w is not None:
                return sample.idle_power_w
        return None

    def poll(self) -> int:
        """Fetch new samples from every engine and redraw; returns how many arrived."""
        if self.paused:
            return 0
        new = 0
        for role, engine in self._engines.items():
            telemetry = getattr(engine, "telemetry", None)
            if telemetry is None:
                continue
            last = self._last_t.get(role, float("-inf"))
            fresh = telemetry.since(last) if math.isfinite(last) else telemetry.snapshot()
            fresh = [s for s in fresh if s.t > last]
            if fresh:
                self._samples[role].extend(fresh)
                self._last_t[role] = fresh[-1].t
                new += len(fresh)
        if new:
            self._redraw()
        self.samples_polled.emit(new)
        return new

    def sample_count(self, role: str) -> int:
        return len(self._samples[role])

    # -- drawing ----------------------------------------------------------------------------------
    def _redraw(self) -> None:
        stats: dict[str, dict[str, float | None]] = {}
        methods = []
        for role in ROLES:
            samples = list(self._samples[role])
            xs = [s.t - self._t0 for s in samples]

            def series(fn, samples=samples):
                return [float("nan") if fn(s) is None else float(fn(s)) for s in samples]

            total = series(lambda s: s.timings_ms.get("total"))
            self.curves[(role, "total")].setData(xs, total, connect="finite")
            for stage in STAGES:
                self.curves[(role, stage)].setData(
                    xs, series(lambda s, st=stage: s.timings_ms.get(st)), connect="finite"
                )
            power = series(lambda s: s.power_w)
            energy = series(lambda s: s.energy_mj)
            self.curves[(role, "power")].setData(xs, power, connect="finite")
            self.curves[(role, "energy")].setData(xs, energy, connect="finite")
            recent = samples[-20:]
            st = {
                "latency": _median(s.timings_ms.get("total") for s in recent),
                "power": _median(s.power_w for s in recent),
                "energy": _median(s.energy_mj for s in recent),
            }
            for stage in STAGES:
                st[stage] = _median(s.timings_ms.get(stage) for s in recent)
            stats[role] = st
            if samples:
                last = samples[-1]
                label = method_label(last.energy_method, bool(last.is_estimate))
                methods.append((ROLE_TITLES[role], label))
                self.summary[(role, "latency")].setText(_fmt(st["latency"], "ms"))
                self.summary[(role, "stages")].setText(
                    " / ".join("—" if st[s] is None else f"{st[s]:.0f}" for s in STAGES) + " ms"
                )
                est = " est." if last.is_estimate and st["power"] is not None else ""
                self.summary[(role, "power")].setText(_fmt(st["power"], "W") + est)
                self.summary[(role, "energy")].setText(_fmt(st["energy"], "mJ", 0) + est)
        s, t = stats.get("student", {}), stats.get("teacher", {})
        for key in ("latency", "energy", "power"):
            a, b = t.get(key), s.get(key)
            self.summary[("ratio", key)].setText(f"× {a / b:.1f}" if a and b else "—")
        if not methods:
            text = "not measured yet"
        elif len({label for _, label in methods}) == 1:
            text = methods[0][1] + (" (both models)" if len(methods) > 1 else "")
        else:
            text = "; ".join(f"{who}: {label}" for who, label in methods)
        idle = [
            st_idle for st_idle in (self._last_idle(r) for r in ("student", "teacher")) if st_idle is not None
        ]
        if idle:
            text += f"; idle baseline {max(idle):.2f} W, measured before, not included in the energy"
        self.method_label.setText("Power and energy: " + text)

    # -- export -----------------------------------------------------------------------------------
    def all_samples(self) -> list:
        rows = []
        for engine in self._engines.values():
            telemetry = getattr(engine, "telemetry", None)
            if telemetry is not None:
                rows.extend(telemetry.snapshot())
        return sorted(rows, key=lambda s: s.t)

    def export_csv(self, path: str | Path) -> int:
        """Write every sample the engines still hold to ``path``; returns the number of rows."""
        count = write_samples_csv(self.all_samples(), path)
        log.info("wrote %d telemetry samples to %s", count, path)
        return count

    def ask_export(self) -> None:
        """Ask where to write the samples (a save dialog), then :meth:`export_csv` there."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Export telemetry", "kdviewer-telemetry.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path)
