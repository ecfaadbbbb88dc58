"""The heat-map controls (on/off, finding, model, method, colour map, opacity) and what they show."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QWidget

from kdviewer.core.explain import CAM_METHODS, DEFAULT_CAM_METHOD, library_methods_available
from kdviewer.core.extras import EXPLAIN_INSTALL
from kdviewer.core.findings import FINDING_KEYS, FINDINGS
from kdviewer.qt.settings import COLORMAPS

METHOD_TIP = "Heat map method: gradcam comes with every inference; the others run the PyTorch model again"


class OverlayControls(QObject):
    """Widgets for the toolbar; they emit the user's choices and render the model's selection."""

    finding_chosen = Signal(str)
    model_chosen = Signal(str)  # "student" / "teacher"
    method_chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.overlay_checkbox = QCheckBox("Heat map")
        self.finding_combo = QComboBox()
        for i, f in enumerate(FINDINGS, start=1):
            self.finding_combo.addItem(f"{i}  {f.name}", f.key)
        self.finding_combo.activated.connect(
            lambda i: self.finding_chosen.emit(self.finding_combo.itemData(i))
        )
        self.model_combo = QComboBox()
        self.model_combo.addItem("Student", "student")
        self.model_combo.addItem("Teacher", "teacher")
        self.model_combo.setToolTip("Which model's heat map is shown")
        self.model_combo.activated.connect(lambda i: self.model_chosen.emit(self.model_combo.itemData(i)))
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(CAM_METHODS))
        if not library_methods_available():  # the light install: the forward pass's Grad-CAM only
            for i, method in enumerate(CAM_METHODS):
                if method != DEFAULT_CAM_METHOD:
                    self.method_combo.model().item(i).setEnabled(False)
                    self.method_combo.setItemData(
                        i, f"needs the explain extra: {EXPLAIN_INSTALL}", Qt.ItemDataRole.ToolTipRole
                    )
        self.method_combo.setToolTip(METHOD_TIP)
        self.method_combo.activated.connect(lambda i: self.method_chosen.emit(self.method_combo.itemText(i)))
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setToolTip("Heat map colour map")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(110)
        self.opacity_slider.setToolTip("Heat map opacity")
        self.opacity_holder = QWidget()
        hl = QHBoxLayout(self.opacity_holder)
        hl.setContentsMargins(6, 0, 6, 0)
        hl.addWidget(QLabel("opacity"))
        hl.addWidget(self.opacity_slider)

    def bind(self, view, settings) -> None:
        """Apply on/off, colour map and opacity to ``view`` (an ImageView), starting from
        ``settings`` and remembering every change there."""
        self.overlay_checkbox.setChecked(settings.overlay_visible)
        self.opacity_slider.setValue(round(settings.overlay_opacity * 100))
        self.colormap_combo.setCurrentText(settings.colormap)
        view.set_overlay_visible(settings.overlay_visible)
        view.set_overlay_opacity(settings.overlay_opacity)
        view.set_colormap(settings.colormap)

        def visible(on):
            view.set_overlay_visible(on)
            settings.overlay_visible = on

        def opacity(value):
            view.set_overlay_opacity(value / 100.0)
            settings.overlay_opacity = value / 100.0

        def colormap(name):
            view.set_colormap(name)
            settings.colormap = name

        self.overlay_checkbox.toggled.connect(visible)
        self.opacity_slider.valueChanged.connect(opacity)
        self.colormap_combo.currentTextChanged.connect(colormap)

    def widgets(self) -> list[QWidget]:
        """In toolbar order."""
        return [
            self.overlay_checkbox,
            self.finding_combo,
            self.model_combo,
            self.method_combo,
            self.colormap_combo,
            self.opacity_holder,
        ]

    def show_selection(self, model) -> None:
        """Reflect a :class:`~kdviewer.core.viewer_model.ViewerModel`'s choices."""
        self.finding_combo.setCurrentIndex(FINDING_KEYS.index(model.finding))
        self.method_combo.setCurrentText(model.cam_method)
        self.method_combo.setToolTip(model.method_note or METHOD_TIP)
        self.model_combo.model().item(1).setEnabled(model.teacher_enabled)
        self.model_combo.setCurrentIndex(0 if model.overlay_role == "student" else 1)
