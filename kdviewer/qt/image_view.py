"""The image view: a pyqtgraph view box holding the radiograph and its heat map overlay.

The heat map is a second ``ImageItem`` in the same view box with the image's geometry (the
engine returns heat maps in the original pixel grid), so the two stay aligned at every zoom and
pan. What the screen shows is rendered by :mod:`kdviewer.core.display` (the same code as the
thumbnails): a DICOM window with its own VOI LUT function (LINEAR, LINEAR_EXACT, SIGMOID) or the
file's VOI LUT, to 8-bit grey; the image item only draws those bytes. A left drag or a drag of
the histogram's region makes a custom window.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from kdviewer.core.display import (
    CUSTOM,
    DisplayRenderer,
    default_window,
    full_range_window,
    window_bounds,
    window_from_bounds,
)
from kdviewer.core.image import Window

log = logging.getLogger(__name__)

_GREY = {"mode": "rgb", "ticks": [(0.0, (0, 0, 0, 255)), (1.0, (255, 255, 255, 255))]}
_GREY_INVERTED = {"mode": "rgb", "ticks": [(0.0, (255, 255, 255, 255)), (1.0, (0, 0, 0, 255))]}
_INVERT_LUT = np.arange(255, -1, -1, dtype=np.ubyte)
_HISTOGRAM_SAMPLES = 250_000  # pixels the histogram is computed from (strided), as pyqtgraph does


def overlay_lookup_table(name: str, n: int = 256) -> np.ndarray:
    """RGBA lookup table for heat maps: the colour map with opacity rising from low values.

    Weak activations stay see-through so the anatomy under them remains readable; the
    overlay's global opacity (the slider) multiplies this.
    """
    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, n, alpha=True).astype(np.ubyte)
    ramp = np.clip((np.linspace(0.0, 1.0, n) - 0.15) / 0.45, 0.0, 1.0)
    lut[:, 3] = (255 * ramp).astype(np.ubyte)
    return lut


class _WindowingViewBox(pg.ViewBox):
    """Left drag adjusts window/level; middle (or Shift+left) drag pans; right drag and wheel zoom."""

    window_dragged = Signal(float, float)  # horizontal and vertical drag since the last event, pixels
    window_drag_started = Signal()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        plain_left = ev.button() == Qt.MouseButton.LeftButton and not (
            ev.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if not plain_left:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            self.window_drag_started.emit()
        delta = ev.screenPos() - ev.lastScreenPos()
        self.window_dragged.emit(float(delta.x()), float(delta.y()))


class ImageView(QWidget):
    """Shows one ``LoadedImage`` with window/level, invert, histogram and a heat map overlay."""

    cursor_moved = Signal(object)  # (col, row, value) under the cursor, or None outside the image
    window_changed = Signal(float, float)  # centre, width (in the image's value space)
    window_edited = Signal()  # the user changed the window by hand (drag, histogram)
    zoom_changed = Signal(float)  # screen pixels per image pixel

    def __init__(self, parent=None):
        super().__init__(parent)
        self._image = None
        self._renderer: DisplayRenderer | None = None
        self._window: Window | None = None  # None: the file's VOI LUT
        self._inverted = False
        self._overlay_on = True
        self._colormap = "inferno"
        self._setting_levels = False

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("imageGraphics")
        self.graphics.ci.setContentsMargins(0, 0, 0, 0)
        self.view_box = _WindowingViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_box.setBackgroundColor((0, 0, 0))
        self.graphics.addItem(self.view_box, row=0, col=0)

        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.overlay_item.setVisible(False)
        self.view_box.addItem(self.image_item)
        self.view_box.addItem(self.overlay_item)

        # the histogram shows the image's values and the window's span; it does not render
        self.histogram = pg.HistogramLUTItem(fillHistogram=True)
        self.histogram.gradient.restoreState(_GREY)
        self.histogram.setFixedWidth(110)
        self.histogram.plot.setBrush((150, 160, 175, 90))
        self.histogram.plot.setPen((170, 180, 195, 160))
        self.histogram.region.setBrush(pg.mkBrush(120, 170, 220, 35))
        self.graphics.addItem(self.histogram, row=0, col=1)
        self.histogram.sigLevelsChanged.connect(self._on_levels_changed)

        self.view_box.window_dragged.connect(self._on_window_dragged)
        self.view_box.sigRangeChanged.connect(self._on_range_changed)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.set_colormap(self._colormap)

        # a message over the image area (why a file could not be read); clicks go through
        self.message_label = QLabel("", self)
        self.message_label.setObjectName("imageMessage")
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message_label.setVisible(False)

    # -- image ---------------------------------------------------------------------------------
    @property
    def image(self):
        return self._image

    def set_image(self, image, window: Window | None = None) -> None:
        """Show ``image`` (a LoadedImage) in ``window``.

        Without ``window`` it starts as :func:`kdviewer.core.display.to_display_uint8` does: the
        file's VOI LUT if it has one, else its first window preset, else the full value range.
        View coordinates are always the image's full geometry (:attr:`LoadedImage.geometry`), so a
        half-resolution preview, the full image that replaces it (:meth:`replace_image`) and the
        heat maps all line up.
        """
        self._image = image
        self._renderer = DisplayRenderer(image)
        self.show_message("")
        self.clear_heatmap()
        self._show_histogram()
        if window is None and image.voi_lut is not None:
            self.apply_voi_lut()
        else:
            self.apply_window(window or default_window(image))
        self.reset_view()

    def replace_image(self, image) -> None:
        """Swap in the full-resolution decode of the image on screen (same file, same geometry),
        keeping the window, the zoom and the heat map."""
        if self._image is None or image.geometry != self._image.geometry:
            self.set_image(image)
            return
        self._image = image
        self._renderer = DisplayRenderer(image)
        self._show_histogram()
        self._render()

    def clear_image(self) -> None:
        """Show nothing (the selected file could not be read)."""
        self._image = None
        self._renderer = None
        self.image_item.clear()
        self.clear_heatmap()
        self.histogram.plot.setData([], [])
        self.cursor_moved.emit(None)

    def show_message(self, text: str) -> None:
        """Show ``text`` over the image area; "" hides it."""
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        self._place_message()

    @property
    def message(self) -> str:
        return self.message_label.text() if self.message_label.isVisible() else ""

    def _place_message(self) -> None:
        margin = 40
        self.message_label.setGeometry(self.rect().adjusted(margin, margin, -margin - 110, -margin))

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        self._place_message()

    def _fit_item_to_geometry(self) -> None:
        rows, cols = self._image.geometry
        self.image_item.setRect(QRectF(0, 0, cols, rows))

    def set_window(self, center: float, width: float, function: str = "LINEAR") -> None:
        """Show the window ``center``/``width`` with a DICOM VOI LUT function."""
        self.apply_window(Window(float(center), float(width), function=function))

    def apply_window(self, window: Window) -> None:
        """Show ``window`` exactly as PS3.3 C.11.2.1.2 defines its function (see core.display)."""
        self._window = window
        self._render()

    def apply_voi_lut(self) -> bool:
        """Display through the file's VOI LUT Sequence; False when the file has none."""
        if self._image is None or self._image.voi_lut is None:
            return False
        self._window = None
        self._render()
        return True

    @property
    def current_window(self) -> Window | None:
        """The window on screen (``explanation`` "custom" when made by hand); None: the VOI LUT."""
        return self._window

    @property
    def display_pixels(self) -> np.ndarray | None:
        """The 8-bit grey on screen, before inversion."""
        return self.image_item.image

    def _render(self) -> None:
        if self._renderer is None:
            return
        grey = self._renderer.render(self._window, voi_lut=self._window is None)
        self.image_item.setImage(
            grey, autoLevels=False, levels=(0, 255), lut=_INVERT_LUT if self._inverted else None
        )
        self._fit_item_to_geometry()
        lo, hi = (
            window_bounds(self._window)
            if self._window is not None
            else (float(v) for v in self._image.value_range)
        )
        self._setting_levels = True
        try:
            self.histogram.setLevels(lo, hi)
        finally:
            self._setting_levels = False
        self.window_changed.emit(*self.window())

    def _show_histogram(self) -> None:
        pixels = self._image.pixels
        step = max(1, int(math.sqrt(pixels.size / _HISTOGRAM_SAMPLES)))
        sample = pixels[::step, ::step]
        lo, hi = (float(v) for v in self._image.value_range)
        if hi <= lo:
            hi = lo + 1.0
        counts, edges = np.histogram(sample, bins=min(500, max(2, int(hi - lo) + 1)), range=(lo, hi))
        self.histogram.plot.setData(edges[:-1], counts.astype(np.float64))
        self.histogram.setHistogramRange(lo, hi)

    def set_levels(self, lo: float, hi: float) -> None:
        """Show ``lo`` as black and ``hi`` as white (a custom window)."""
        self.apply_window(window_from_bounds(lo, hi))

    def window(self) -> tuple[float, float]:
        """Current (centre, width); the VOI LUT's input range when it is shown."""
        if self._window is not None:
            return float(self._window.center), float(self._window.width)
        lo, hi = self.histogram.getLevels()
        return (lo + hi) / 2.0, hi - lo

    def set_inverted(self, on: bool) -> None:
        self._inverted = bool(on)
        self.histogram.gradient.restoreState(_GREY_INVERTED if on else _GREY)
        self.image_item.setLookupTable(_INVERT_LUT if self._inverted else None)

    @property
    def inverted(self) -> bool:
        return self._inverted

    def reset_view(self) -> None:
        if self._image is not None:
            h, w = self._image.geometry
            self.view_box.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)

    def zoom(self, factor: float) -> None:
        """Zoom about the view centre; ``factor`` > 1 magnifies."""
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor))

    def zoom_level(self) -> float:
        """Screen pixels per image pixel (of the full-resolution image)."""
        px = self.view_box.viewPixelSize()[0]
        return 1.0 / px if px > 0 else 1.0

    def zoom_to(self, level: float = 1.0) -> None:
        """Zoom about the view centre to ``level`` screen pixels per image pixel (1: actual pixels)."""
        centre = self.view_box.viewRect().center()
        half_w = self.view_box.width() / level / 2.0
        half_h = self.view_box.height() / level / 2.0
        self.view_box.setRange(
            xRange=(centre.x() - half_w, centre.x() + half_w),
            yRange=(centre.y() - half_h, centre.y() + half_h),
            padding=0,
        )

    def _on_range_changed(self, *_):
        self.zoom_changed.emit(self.zoom_level())

    # -- heat map ------------------------------------------------------------------------------
    def set_heatmap(self, heatmap: np.ndarray | None) -> None:
        """Show a [0, 1] heat map with the image's geometry; None hides it."""
        if heatmap is None:
            self.clear_heatmap()
            return
        if self._image is not None and tuple(heatmap.shape) != self._image.geometry:
            raise ValueError(
                f"heat map shape {heatmap.shape} differs from the image's {self._image.geometry}"
            )
        self.overlay_item.setImage(np.asarray(heatmap, dtype=np.float32), levels=(0.0, 1.0), autoLevels=False)
        self.overlay_item.setVisible(self._overlay_on)

    def clear_heatmap(self) -> None:
        self.overlay_item.clear()
        self.overlay_item.setVisible(False)

    @property
    def has_heatmap(self) -> bool:
        return self.overlay_item.image is not None

    def set_overlay_visible(self, on: bool) -> None:
        self._overlay_on = bool(on)
        self.overlay_item.setVisible(self._overlay_on and self.has_heatmap)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_item.setOpacity(min(1.0, max(0.0, float(opacity))))

    def set_colormap(self, name: str) -> None:
        self._colormap = name
        self.overlay_item.setLookupTable(overlay_lookup_table(name))

    # -- events --------------------------------------------------------------------------------
    def _on_levels_changed(self, *_):
        if self._setting_levels or self._image is None:
            return
        # the histogram's region dragged by hand
        self.apply_window(window_from_bounds(*self.histogram.getLevels()))
        self.window_edited.emit()

    def _on_window_dragged(self, dx: float, dy: float) -> None:
        if self._image is None:
            return
        lo, hi = (float(v) for v in self._image.value_range)
        step = max(hi - lo, 1.0) / 600.0  # about the full range across a 600-pixel drag
        lo, hi = window_bounds(self._window) if self._window is not None else self.histogram.getLevels()
        center, width = (lo + hi) / 2.0, hi - lo
        width = max(width + dx * step * 2.0, step)
        center = center + dy * step
        self.apply_window(window_from_bounds(center - width / 2.0, center + width / 2.0))
        self.window_edited.emit()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._image is None or not self.view_box.sceneBoundingRect().contains(scene_pos):
            self.cursor_moved.emit(None)
            return
        p = self.view_box.mapSceneToView(scene_pos)
        col, row = int(math.floor(p.x())), int(math.floor(p.y()))
        h, w = self._image.geometry
        if 0 <= row < h and 0 <= col < w:
            ph, pw = self._image.shape  # smaller than the geometry while a preview is shown
            value = self._image.pixels[row * ph // h, col * pw // w]
            self.cursor_moved.emit((col, row, float(value)))
        else:
            self.cursor_moved.emit(None)


class WindowPresetBox(QComboBox):
    """The image's window/level presets (its VOI LUT, its windows, the full range), applied to an
    :class:`ImageView`; it says "Custom" once the window is changed by hand."""

    def __init__(self, view: ImageView, parent=None):
        super().__init__(parent)
        self._view = view
        self.setToolTip("Window/level: the file's presets, its VOI LUT, or the full range")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.activated.connect(self._on_activated)
        view.window_edited.connect(self._on_window_edited)

    def set_image(self, image) -> None:
        """List ``image``'s presets; the first is the one the view starts with."""
        self.clear()
        if image is None:
            return
        if image.voi_lut is not None:
            self.addItem("VOI LUT (file)", ("voi", None))
        for i, w in enumerate(image.windows, start=1):
            label = w.explanation if w.explanation and len(w.explanation) < 24 else f"Preset {i}"
            function = "" if w.function == "LINEAR" else f" {w.function.lower()}"
            self.addItem(f"{label}: C {w.center:g} W {w.width:g}{function}", ("window", w))
        self.addItem("Full range", ("window", full_range_window(image.value_range)))
        self.setCurrentIndex(0)  # the view starts from the same rule (see ImageView.set_image)

    def _on_activated(self, index: int) -> None:
        kind, window = self.itemData(index)
        if kind == "voi":
            self._view.apply_voi_lut()
        elif kind == "window":
            self._view.apply_window(window)

    def _on_window_edited(self) -> None:
        center, width = self._view.window()
        text = f"{CUSTOM.capitalize()}: C {center:.0f} W {width:.0f}"
        last = self.count() - 1
        if last >= 0 and self.itemData(last)[0] == "custom":
            self.setItemText(last, text)
        else:
            self.addItem(text, ("custom", None))
        self.setCurrentIndex(self.count() - 1)
