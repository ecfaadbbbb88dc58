"""Measurement tools on the image view: a ruler, an angle and the cardiothoracic ratio (CTR).

Each tool is a pyqtgraph line segment in image coordinates, so it stays on the anatomy at any zoom
or pan; its handles move it, its context menu removes it. Lengths and the ratio come from
:mod:`kdviewer.core.measure`; a ruler without pixel spacing reads in px and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from kdviewer.core.measure import (
    CTR_LIMIT,
    Calibration,
    angle_degrees,
    calibration,
    cardiothoracic_ratio,
    format_length,
    length,
)
from kdviewer.qt.actions import add_menu_actions

_COLOURS = {
    "ruler": (80, 220, 120),
    "angle": (230, 120, 230),
    "cardiac": (255, 170, 60),
    "thoracic": (90, 180, 255),
}


@dataclass
class _Tool:
    kind: str  # "ruler", "angle" or "ctr"
    segments: (
        list  # a LineSegmentROI (ruler), a three-point PolyLineROI (angle), two (ctr: cardiac, thoracic)
    )
    label: pg.TextItem


class MeasureTools(QObject):
    """Adds, updates and removes measurements on an :class:`~kdviewer.qt.image_view.ImageView`."""

    measurements_changed = Signal()

    def __init__(self, image_view, parent=None):
        super().__init__(parent)
        self.view = image_view
        self.cal = Calibration(None, None, "none", "no image")
        self._tools: list[_Tool] = []
        self._shape = (0, 0)

    # -- menu -----------------------------------------------------------------------------------
    def install(self, menu_bar, window) -> list[QAction]:
        """A Measure menu with Ruler (M), Cardiothoracic ratio (C) and Clear."""
        menu = QMenu("M&easure", menu_bar)
        help_menu = next((a for a in menu_bar.actions() if a.text() == "&Help"), None)
        if help_menu is not None:
            menu_bar.insertMenu(help_menu, menu)
        else:
            menu_bar.addMenu(menu)
        return add_menu_actions(
            window,
            menu,
            (
                ("&Ruler", "M", lambda: self.add_ruler()),
                ("&Angle", "A", lambda: self.add_angle()),
                ("&Cardiothoracic ratio", "C", lambda: self.add_ctr()),
                ("C&lear measurements", "Shift+Del", self.clear),
            ),
        )

    # -- state ----------------------------------------------------------------------------------
    def set_image(self, image) -> None:
        """A new image: its measurements start empty, with its calibration."""
        self.clear()
        if image is None:
            self.cal, self._shape = Calibration(None, None, "none", "no image"), (0, 0)
            return
        self.cal = calibration(image)
        self._shape = (int(image.metadata.rows), int(image.metadata.cols))

    def clear(self) -> None:
        for tool in list(self._tools):
            self._remove(tool)

    def summaries(self) -> list[str]:
        """One line per measurement, as shown (for the report)."""
        return [tool.label.toPlainText().replace("\n", "; ") for tool in self._tools]

    # -- tools ----------------------------------------------------------------------------------
    def add_ruler(self, p0: tuple[float, float] | None = None, p1: tuple[float, float] | None = None):
        """A ruler from ``p0`` to ``p1`` (x = column, y = row); by default across the middle."""
        rows, cols = self._shape
        if not rows:
            return None
        p0 = p0 or (cols * 0.35, rows * 0.5)
        p1 = p1 or (cols * 0.65, rows * 0.5)
        tool = _Tool("ruler", [self._segment(p0, p1, "ruler")], self._label("ruler"))
        return self._add(tool)

    def add_angle(
        self,
        a: tuple[float, float] | None = None,
        vertex: tuple[float, float] | None = None,
        b: tuple[float, float] | None = None,
    ):
        """An angle at ``vertex`` between the arms to ``a`` and ``b`` (x = column, y = row)."""
        rows, cols = self._shape
        if not rows:
            return None
        a = a or (cols * 0.3, rows * 0.35)
        vertex = vertex or (cols * 0.5, rows * 0.5)
        b = b or (cols * 0.7, rows * 0.35)
        poly = pg.PolyLineROI(
            [a, vertex, b], closed=False, pen=pg.mkPen(_COLOURS["angle"], width=2), removable=True
        )
        poly.setZValue(20)
        return self._add(_Tool("angle", [poly], self._label("angle")))

    def add_ctr(
        self,
        cardiac: tuple[float, float, float] | None = None,
        thoracic: tuple[float, float, float] | None = None,
    ):
        """Two horizontal spans (x0, x1, y): the maximal cardiac and the maximal thoracic width."""
        rows, cols = self._shape
        if not rows:
            return None
        cardiac = cardiac or (cols * 0.38, cols * 0.68, rows * 0.65)
        thoracic = thoracic or (cols * 0.12, cols * 0.88, rows * 0.55)
        segments = [
            self._segment((x0, y), (x1, y), kind)
            for (x0, x1, y), kind in ((cardiac, "cardiac"), (thoracic, "thoracic"))
        ]
        return self._add(_Tool("ctr", segments, self._label("ctr")))

    def endpoints(self, segment) -> list[tuple[float, float]]:
        """A tool's points (its handles, in order) in image coordinates (x = column, y = row)."""
        out = []
        for handle in segment.getHandles():
            p = segment.mapToParent(handle.pos())
            out.append((float(p.x()), float(p.y())))
        return out

    def _segment(self, p0, p1, kind: str):
        seg = pg.LineSegmentROI([p0, p1], pen=pg.mkPen(_COLOURS[kind], width=2), removable=True)
        seg.setZValue(20)
        return seg

    def _label(self, kind: str) -> pg.TextItem:
        label = pg.TextItem(
            "",
            color=_COLOURS["cardiac" if kind == "ctr" else kind],
            anchor=(0, 1),
            fill=pg.mkBrush(0, 0, 0, 160),
        )
        label.setZValue(21)
        return label

    def _add(self, tool: _Tool) -> _Tool:
        for seg in tool.segments:
            self.view.view_box.addItem(seg)
            seg.sigRegionChanged.connect(lambda *_a, t=tool: self._update(t))
            seg.sigRemoveRequested.connect(lambda *_a, t=tool: self._remove(t))
        self.view.view_box.addItem(tool.label)
        self._tools.append(tool)
        self._update(tool)
        return tool

    def _remove(self, tool: _Tool) -> None:
        if tool not in self._tools:
            return
        self._tools.remove(tool)
        for item in (*tool.segments, tool.label):
            self.view.view_box.removeItem(item)
        self.measurements_changed.emit()

    def _update(self, tool: _Tool) -> None:
        cal = self.cal
        if tool.kind == "ruler":
            p0, p1 = self.endpoints(tool.segments[0])
            text = f"{format_length(length(p0, p1, cal), cal)}"
            if cal.unit == "px":
                text += "  (no pixel spacing: pixels, not mm)"
            elif cal.note:
                text += f"  ({cal.source}, {cal.note})"
            anchor = p0 if p0[0] <= p1[0] else p1  # the left end: the text runs right, over the image
        elif tool.kind == "angle":
            points = self.endpoints(tool.segments[0])
            anchor = points[1] if len(points) > 1 else points[0]
            try:
                if len(points) != 3:  # a click on an arm adds a point
                    raise ValueError("an angle has three points; remove this one and draw it again")
                text = f"{angle_degrees(*points, cal):.1f}°"
            except ValueError as exc:
                text = f"angle: {exc}"
        else:
            (c0, c1), (t0, t1) = (self.endpoints(s) for s in tool.segments)
            cardiac, thoracic = abs(c1[0] - c0[0]), abs(t1[0] - t0[0])
            try:
                ratio = cardiothoracic_ratio(cardiac, thoracic)
            except ValueError:
                text = "CTR: the thoracic span has no width"
            else:
                if cal.col_mm is not None:
                    cardiac, thoracic = cardiac * cal.col_mm, thoracic * cal.col_mm
                flag = f" > {CTR_LIMIT} (enlarged?)" if ratio > CTR_LIMIT else ""
                text = (
                    f"CTR {ratio:.2f}{flag}\ncardiac {format_length(cardiac, cal)}, "
                    f"thoracic {format_length(thoracic, cal)}"
                )
            anchor = t0 if t0[0] <= t1[0] else t1
        tool.label.setText(text)
        tool.label.setPos(*anchor)
        self.measurements_changed.emit()
