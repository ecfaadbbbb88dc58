"""Compare: another study of the same patient beside the one on screen, zoom, pan and window in step.

The second image is read on a background thread (in the reader process, as every read); its
scores are the study list's (background scoring made them), so comparing runs no model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from kdviewer.core.findings import finding
from kdviewer.core.readpool import read_image_elsewhere
from kdviewer.qt.actions import add_menu_actions
from kdviewer.qt.image_view import ImageView

log = logging.getLogger(__name__)


def _default_reader(path: str):
    return read_image_elsewhere(path)


class ComparePanel(QWidget):
    """A second :class:`ImageView` linked to the main one, and the compared study's scores."""

    image_loaded = Signal(str, object)  # path, LoadedImage (from the reader thread)
    load_failed = Signal(str, str)  # path, message

    def __init__(self, main_view: ImageView, model, reader=None, parent=None):
        super().__init__(parent)
        self.setObjectName("comparePanel")
        self.main_view, self.model = main_view, model
        self._reader = reader or _default_reader
        self._wanted: str | None = None
        self.view = ImageView()
        self.caption = QLabel("")
        self.caption.setObjectName("compareCaption")
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)
        self.setVisible(False)
        self.image_loaded.connect(self._on_image_loaded)
        self.load_failed.connect(self._on_load_failed)
        main_view.window_changed.connect(self._follow_window)
        model.events.compare_changed.connect(self.show_study)
        model.events.study_scored.connect(lambda path, _pred: path == self._wanted and self._show_caption())
        model.events.image_changed.connect(lambda _path, _image: model.set_compare(None))

    def install(self, menu_bar, window) -> list[QAction]:
        """View ▸ Compare with prior (Ctrl+K) and Close comparison."""
        view_menu = next(m.menu() for m in menu_bar.actions() if m.text() == "&View")
        view_menu.addSeparator()
        return add_menu_actions(
            window,
            view_menu,
            (
                ("Compare with &prior", "Ctrl+K", self.compare_with_prior),
                ("Close &comparison", "Ctrl+Shift+K", lambda: self.model.set_compare(None)),
            ),
        )

    def compare_with_prior(self) -> None:
        """The most recent other study of this patient in the list, beside this one."""
        priors = self.model.priors()
        if not priors:
            self.window().statusBar().showMessage("No other study of this patient in the study list", 8000)
            return
        self.model.set_compare(priors[0])

    # -- the model's events ---------------------------------------------------------------------
    def show_study(self, path: str | None) -> None:
        self._wanted = path
        if path is None:
            self.setVisible(False)
            self.view.clear_image()
            self.caption.setText("")
            return
        self.setVisible(True)
        self.caption.setText(f"{Path(path).name}: reading…")
        threading.Thread(target=self._read, args=(path,), name="CompareReader", daemon=True).start()

    def _read(self, path: str) -> None:
        try:
            image = self._reader(path)
        except Exception as exc:  # noqa: BLE001 - the message names the file and the cause
            self.load_failed.emit(path, str(exc))
            return
        self.image_loaded.emit(path, image)

    def _on_image_loaded(self, path: str, image) -> None:
        if path != self._wanted:
            return  # another study was chosen meanwhile
        # Unlinked while the image is set, so its own reset does not move the main view; then it
        # follows the main view's range, and either view's zoom and pan move both.
        self.view.view_box.setXLink(None)
        self.view.view_box.setYLink(None)
        self.view.set_image(image, window=self.main_view.current_window)
        self.view.set_inverted(self.main_view.inverted)
        self.view.view_box.setXLink(self.main_view.view_box)
        self.view.view_box.setYLink(self.main_view.view_box)
        self._show_caption()

    def _on_load_failed(self, path: str, message: str) -> None:
        if path == self._wanted:
            self.caption.setText(message)

    def _follow_window(self, center: float, width: float) -> None:
        if self.view.image is not None and self.isVisible():
            window = self.main_view.current_window
            self.view.set_window(center, width, window.function if window is not None else "LINEAR")

    def _show_caption(self) -> None:
        path = self._wanted
        if path is None:
            return
        pred = self.model.list_scores.get(path)
        date = self.model.study_info.get(path, (None, None))[1] or "undated"
        if pred is None:
            scores = "scoring…"
        else:
            scores = " · ".join(
                f"{finding(k).name} {pred.scores[k]:.2f}{' +' if pred.positive[k] else ''}"
                for k in pred.findings
            )
        self.caption.setText(f"Compared: {Path(path).name} ({date}) — student: {scores}")
