"""The main window: lays the panels out and renders the viewer's model.

What is open, selected and computed lives in :class:`kdviewer.core.viewer_model.ViewerModel`
(Qt-free); :class:`kdviewer.qt.controller.ViewerController` runs its requests on worker threads.
The window turns the model's events into widget updates and the user's actions into the model's
intents; it never waits for a worker and never opens a modal dialog for a bad file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QSplitter, QToolBar, QVBoxLayout, QWidget

from kdviewer import RESEARCH_NOTICE
from kdviewer.core.resources import example_image
from kdviewer.core.viewer_model import ViewerModel
from kdviewer.qt.actions import (
    about_text,
    ask_for_files,
    ask_for_folder,
    build_actions,
    build_menus,
    fill_recent_menu,
    shortcut_sheet,
    show_sheet,
)
from kdviewer.qt.compare_view import ComparePanel
from kdviewer.qt.controller import ViewerController
from kdviewer.qt.dicom_node import install as install_dicom_node
from kdviewer.qt.docks import arrange_docks, panel_dock, restore_window
from kdviewer.qt.exports import WorkflowExports
from kdviewer.qt.image_view import ImageView, WindowPresetBox
from kdviewer.qt.measure_tools import MeasureTools
from kdviewer.qt.metadata_strip import MetadataStrip
from kdviewer.qt.models_view import ModelsView
from kdviewer.qt.overlay_controls import OverlayControls
from kdviewer.qt.scope_banner import ScopeBanner
from kdviewer.qt.scores_panel import ScoresPanel
from kdviewer.qt.settings import ViewerSettings
from kdviewer.qt.status_bar import ViewerStatusBar
from kdviewer.qt.study_list import StudyListPanel
from kdviewer.qt.tag_viewer import TagViewerDialog
from kdviewer.qt.telemetry_panel import TelemetryPanel

log = logging.getLogger(__name__)

STUDENT_START_GRACE_MS = 1500


class ViewerWindow(QMainWindow):
    """The radiologist's window: study list, image with heat map, scores, latency and power."""

    image_shown = Signal(str)  # path of the image now on screen
    image_refined = Signal(str)  # path whose full-resolution decode replaced the preview on screen
    image_load_failed = Signal(str, str)  # path, message
    engine_ready = Signal(str)  # role whose engine finished loading
    engine_unavailable = Signal(str, str)  # role, reason
    prediction_shown = Signal(str)  # role whose prediction for the image on screen is now displayed
    heatmap_shown = Signal()  # the overlay changed
    view_ready = Signal()  # every active model's scores and the selected heat map are shown
    study_list_scored = Signal()  # every file of the study list has been scored (or failed)

    def __init__(
        self,
        settings: ViewerSettings | None = None,
        *,
        engine_loaders: dict[str, Callable[[], Any]] | None = None,
        reader: Callable[[str], Any] | None = None,
        t_start: float | None = None,
    ):
        super().__init__()
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.timings_ms: dict[str, float] = {}
        self.settings = settings or ViewerSettings()
        self.model = ViewerModel(
            finding_key=self.settings.finding,
            cam_method=self.settings.cam_method,
            teacher_enabled=self.settings.teacher_enabled,
            scope_gate=self.settings.scope_gate,
        )
        self._started = False
        self._closed = False
        self._tag_dialog: TagViewerDialog | None = None

        self.setWindowTitle("kdviewer — chest X-ray viewer · " + RESEARCH_NOTICE)
        self.setAcceptDrops(True)
        self._build_widgets()
        # Out-of-scope images (kdviewer.core.scope): a banner above the image, scores hidden until
        # "show anyway".
        self.scope_banner = ScopeBanner(self.model, hide_when_out=[self.scores_panel])
        self.center_layout.insertWidget(1, self.scope_banner)
        self.actions_ = build_actions(self, self._action_slots())
        self.recent_menu = build_menus(self.menuBar(), self.actions_)
        self.measure = MeasureTools(self.image_view, parent=self)  # Measure > Ruler, Cardiothoracic ratio
        self.measure.install(self.menuBar(), self)
        self.model.events.image_changed.connect(lambda _path, image: self.measure.set_image(image))
        self.exports = WorkflowExports(self)  # File > Report, export the view or the study list
        self.exports.install(
            next(m.menu() for m in self.menuBar().actions() if m.text() == "&File"), before=self.actions_.quit
        )
        self._build_toolbar()
        self.models_view = ModelsView(
            self.model,
            scores_panel=self.scores_panel,
            parent=self,
            telemetry_panel=self.telemetry_panel,
            status_bar=self.status,
            banner=self.untrained_banner,
            teacher_action=self.teacher_action,
        )
        for name in ("engine_ready", "engine_unavailable", "prediction_shown"):
            getattr(self.models_view, name).connect(getattr(self, name).emit)
        self.prediction_shown.connect(
            lambda role: (
                role == "student"
                and self.timings_ms.setdefault(
                    "time_to_first_scores", 1000 * (time.perf_counter() - self.t_start)
                )
            )
        )
        self._connect_model()
        self._restore_settings()
        self.model.events.selection_changed.emit()  # every view shows the restored choices
        self.controller = ViewerController(
            self.model, engine_loaders=engine_loaders, reader=reader, parent=self
        )
        self.controller.thumbnail_ready.connect(self.study_list.set_thumbnail)
        self.controller.thumbnail_ready.connect(lambda t: self.model.note_metadata(t.path, t.metadata))
        self.compare.install(self.menuBar(), self)
        self.dicom_receiver = install_dicom_node(self)  # File > Receive over DICOM, Query PACS…

    # ------------------------------------------------------------------------------------------
    # construction
    def _build_widgets(self) -> None:
        self.status = ViewerStatusBar()
        self.setStatusBar(self.status)
        self.models_label = self.status.models_label
        self.image_view = ImageView()
        self.image_view.cursor_moved.connect(self.status.show_cursor)
        self.image_view.window_changed.connect(self.status.show_window)
        self.image_view.zoom_changed.connect(self.status.show_zoom)
        self.metadata_strip = MetadataStrip()
        self.untrained_banner = QLabel("")
        self.untrained_banner.setObjectName("untrainedBanner")
        self.untrained_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.untrained_banner.setVisible(False)

        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.untrained_banner)
        self.compare = ComparePanel(self.image_view, self.model)  # View > Compare with prior
        pair = QSplitter(Qt.Orientation.Horizontal)
        pair.setChildrenCollapsible(False)
        pair.addWidget(self.image_view)
        pair.addWidget(self.compare)
        cl.addWidget(pair, 1)
        self.center_layout = cl  # banners go above the image (and the compared study)
        cl.addWidget(self.metadata_strip)

        self.study_list = StudyListPanel()
        self.study_list.study_selected.connect(self.model.select_study)
        self.study_list.triage.view_changed.connect(self.model.set_triage)
        self.study_list.read_toggled.connect(self.model.set_read)
        self.scores_panel = ScoresPanel()
        self.scores_panel.finding_selected.connect(self.model.select_finding)
        self.scores_panel.teacher_toggled.connect(self.set_teacher_enabled)
        self.telemetry_panel = TelemetryPanel()
        self._build_docks(center)

        self.preset_combo = WindowPresetBox(self.image_view)
        self.controls = OverlayControls(self)
        c = self.controls
        self.overlay_checkbox, self.opacity_slider = c.overlay_checkbox, c.opacity_slider
        self.finding_combo, self.method_combo, self.colormap_combo = (
            c.finding_combo,
            c.method_combo,
            c.colormap_combo,
        )
        self.model_combo = c.model_combo
        c.bind(self.image_view, self.settings)
        c.finding_chosen.connect(self.model.select_finding)
        c.model_chosen.connect(self.model.select_overlay_model)
        c.method_chosen.connect(self.model.select_cam_method)

    def _build_docks(self, center: QWidget) -> None:
        # The image is the central widget and takes what the panels leave; each panel is a dock
        # the reader can close (View ▸ Panels brings it back), resize or float.
        self.setCentralWidget(center)
        self.study_dock = panel_dock("Studies", self.study_list, "studiesDock", scroll=False)
        self.scores_dock = panel_dock("Findings", self.scores_panel, "scoresDock")
        self.telemetry_dock = panel_dock("Latency and power", self.telemetry_panel, "telemetryDock")
        arrange_docks(self, self.study_dock, self.scores_dock, self.telemetry_dock)

    def _action_slots(self) -> dict[str, Callable]:
        view = self.image_view
        return {
            "open": self._on_open_triggered,
            "open_folder": self._on_open_folder_triggered,
            "next": self.study_list.select_next,
            "previous": self.study_list.select_previous,
            "reset": view.reset_view,
            "zoom_in": lambda: view.zoom(1.25),
            "zoom_out": lambda: view.zoom(0.8),
            "zoom_actual": lambda: view.zoom_to(1.0),
            "invert": view.set_inverted,
            "overlay": lambda: self.overlay_checkbox.toggle(),
            "teacher": lambda on: self.set_teacher_enabled(on),
            "identifiers": self.set_show_identifiers,
            "tags": self.show_tags,
            "export": self.telemetry_panel.ask_export,
            "quit": self.close,
            "shortcuts": lambda: show_sheet(self, "Keyboard shortcuts", shortcut_sheet(self.actions_)),
            "about": lambda: show_sheet(self, "About kdviewer", about_text(self.model.engines)),
            "finding": self.model.select_finding,
        }

    def _build_toolbar(self) -> None:
        a = self.actions_
        # shortcuts are the window's; aliases kept for callers that name actions directly
        self.next_action, self.prev_action, self.invert_action = a.next, a.previous, a.invert
        self.teacher_action, self.identifiers_action, self.finding_actions = (
            a.teacher,
            a.identifiers,
            a.findings,
        )
        view_menu = next(m.menu() for m in self.menuBar().actions() if m.text() == "&View")
        panels = view_menu.addMenu("&Panels")
        for dock in (self.study_dock, self.scores_dock, self.telemetry_dock):
            panels.addAction(dock.toggleViewAction())
        # Short toolbar labels (the menus keep the full names) so the toolbar fits 1366 px; what
        # does not fit a narrower window goes to the toolbar's » overflow menu.
        for action, short in (
            (a.open, "Open"),
            (a.open_folder, "Folder"),
            (a.previous, "◀ Prev"),
            (a.next, "Next ▶"),
            (a.reset, "Reset"),
            (a.zoom_actual, "1:1"),
            (a.identifiers, "IDs"),
            (a.tags, "Tags"),
        ):
            action.setIconText(short)
        self.preset_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.preset_combo.setMinimumContentsLength(10)  # long preset names are elided; the list shows them
        self.opacity_slider.setFixedWidth(70)
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        for item in (
            a.open,
            a.open_folder,
            None,
            a.previous,
            a.next,
            None,
            QLabel(" W/L "),
            self.preset_combo,
            a.invert,
            a.reset,
            a.zoom_actual,
            None,
            *self.controls.widgets(),
            None,
            a.identifiers,
            a.tags,
        ):
            if item is None:
                tb.addSeparator()
            elif isinstance(item, QWidget):
                tb.addWidget(item)
            else:
                tb.addAction(item)

    def _restore_settings(self) -> None:
        s = self.settings
        restore_window(self, s.geometry, s.window_state, QSize(1600, 980))
        self._rebuild_recent_menu()

    def _connect_model(self) -> None:
        ev = self.model.events
        ev.studies_changed.connect(lambda paths, current: self.study_list.set_studies(paths, current=current))
        ev.image_changed.connect(self._on_image_changed)
        ev.image_refined.connect(self._on_image_refined)
        ev.load_requested.connect(
            lambda _rid, path: self.statusBar().showMessage(f"Reading {Path(path).name}…")
        )
        ev.load_failed.connect(self._on_load_failed)
        ev.study_failed.connect(self.study_list.set_error)
        ev.study_scored.connect(self.study_list.set_score)
        ev.list_scored.connect(self.study_list_scored.emit)
        ev.worklist_changed.connect(self.study_list.apply_worklist)
        ev.read_changed.connect(self.study_list.set_read)
        ev.heatmap_changed.connect(self._on_heatmap_changed)
        ev.busy_changed.connect(self._on_busy_changed)
        ev.selection_changed.connect(self._on_selection_changed)
        ev.view_ready.connect(self.view_ready.emit)

    # ------------------------------------------------------------------------------------------
    # start-up and shutdown
    def start(self, paths: Sequence[str] = ()) -> None:
        """Open ``paths`` (or the built-in example) and start loading the models in the background."""
        if self._started:
            return
        self._started = True
        if paths:
            self.open_paths(paths)
        else:
            self.open_example()
        # torch is imported on the student's thread; started once the first image is on screen
        # (or after a short grace period) so the import does not slow the first read down
        QTimer.singleShot(STUDENT_START_GRACE_MS, lambda: self.controller.ensure_worker("student"))

    def worker_threads(self) -> list:
        """Every QThread this window started (for clean-shutdown checks)."""
        return self.controller.threads() + self.dicom_receiver.threads()

    def shutdown(self) -> None:
        """Save settings and stop every worker thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._save_settings()
        self.telemetry_panel.stop()
        # The window goes at once; a model still loading (an ONNX export takes seconds) cannot
        # be interrupted, so its thread is waited for out of sight rather than behind a frozen window.
        self.hide()
        self.controller.stop()
        self.dicom_receiver.shutdown()  # the listener, and the PACS dialog's retrieval
        self.exports.wait()
        if self._tag_dialog is not None:
            self._tag_dialog.close()

    def closeEvent(self, event):  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def _save_settings(self) -> None:
        s = self.settings
        s.geometry = self.saveGeometry()
        s.window_state = self.saveState()  # which panels are shown, and their sizes
        s.finding = self.model.finding
        s.cam_method = self.model.cam_method
        if "teacher" not in self.model.unavailable:
            s.teacher_enabled = self.model.teacher_enabled
        s.sync()

    # ------------------------------------------------------------------------------------------
    # opening
    def open_example(self) -> None:
        try:
            path = str(example_image())
        except FileNotFoundError as exc:
            self._on_load_failed("", f"Built-in example missing: {exc}")
            return
        self.model.open_paths([path])

    def open_paths(self, paths: Sequence[str]) -> None:
        """Open files and/or folders; the study list is replaced once something readable is found."""
        paths = [str(p) for p in paths]
        if paths:  # where the Open dialogs start next time
            first = Path(paths[0])
            self.settings.last_folder = str(first if first.is_dir() else first.parent)
        self.model.open_paths(paths)

    # ------------------------------------------------------------------------------------------
    # the model's events
    def _on_image_changed(self, path: str, image) -> None:
        self.statusBar().clearMessage()  # messages about the previous image are stale now
        self.preset_combo.set_image(image)
        self.metadata_strip.set_metadata(getattr(image, "metadata", None), path)
        self._refresh_tags()
        self.study_list.select_path(path)
        if image is None:  # unreadable: the reason comes with load_failed
            self.image_view.clear_image()
            return
        self.image_view.set_image(image)
        self.settings.add_recent(path)
        self._rebuild_recent_menu()
        self.timings_ms.setdefault("time_to_image", 1000 * (time.perf_counter() - self.t_start))
        self.image_shown.emit(path)

    def _on_image_refined(self, path: str, image) -> None:
        self.image_view.replace_image(image)
        self._refresh_tags()
        self.image_refined.emit(path)

    def _on_load_failed(self, path: str, message: str) -> None:
        """Inline, never modal: the status bar, the image area and (via study_failed) the list."""
        self.statusBar().showMessage(message)
        self.image_view.show_message(f"Cannot open {Path(path).name}\n\n{message}" if path else message)
        self.image_load_failed.emit(path, message)

    def _on_heatmap_changed(self, _key, heatmap) -> None:
        self.image_view.set_heatmap(heatmap)
        self.heatmap_shown.emit()

    def _on_busy_changed(self, text: str) -> None:
        self.status.show_busy(text)
        if text:
            self.statusBar().showMessage(text)
        elif self.model.method_note:
            self.statusBar().showMessage(self.model.method_note)

    def _on_selection_changed(self) -> None:
        self.controls.show_selection(self.model)
        if self.model.method_note:
            self.statusBar().showMessage(self.model.method_note)

    # ------------------------------------------------------------------------------------------
    # user choices (the model decides what work they need)
    def select_overlay_model(self, role: str) -> None:
        self.model.select_overlay_model(role)

    def set_teacher_enabled(self, on: bool) -> None:
        self.model.set_teacher_enabled(on)
        if "teacher" not in self.model.unavailable:
            self.settings.teacher_enabled = self.model.teacher_enabled

    def set_show_identifiers(self, on: bool) -> None:
        self.identifiers_action.setChecked(on)
        self.metadata_strip.set_show_identifiers(on)
        self._refresh_tags()

    def show_tags(self) -> TagViewerDialog:
        if self._tag_dialog is None:
            self._tag_dialog = TagViewerDialog(self)
        self._tag_dialog.show()
        self._refresh_tags()
        self._tag_dialog.raise_()
        return self._tag_dialog

    def _refresh_tags(self) -> None:
        if self._tag_dialog is None or not self._tag_dialog.isVisible():
            return
        image = self.model.image
        self._tag_dialog.set_dataset(
            getattr(image, "dataset", None),
            title=Path(self.model.path or "").name,
            show_identifiers=self.identifiers_action.isChecked(),
        )

    # -- what tests and the screenshot read (the rest they read from self.model) ---------------
    current_path = property(lambda self: self.model.path, doc="The study on screen (see ViewerModel.path).")
    current_image = property(lambda self: self.model.image, doc="Its LoadedImage (see ViewerModel.image).")

    def prediction(self, role: str):
        """The prediction shown for ``role`` on the image on screen (None if none yet)."""
        return self.model.prediction(role)

    def is_view_complete(self) -> bool:
        return self.model.is_view_complete()

    # ------------------------------------------------------------------------------------------
    # files: dialogs, recent, drag and drop
    def _on_open_triggered(self) -> None:
        self.open_paths(ask_for_files(self, self.settings.last_folder))

    def _on_open_folder_triggered(self) -> None:
        self.open_paths(ask_for_folder(self, self.settings.last_folder))

    def _rebuild_recent_menu(self) -> None:
        fill_recent_menu(
            self.recent_menu,
            self.settings.recent_files,
            lambda p: self.open_paths([p]),
            self._on_clear_recent_triggered,
        )

    def _on_clear_recent_triggered(self) -> None:
        self.settings.clear_recent()
        self._rebuild_recent_menu()

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        if "time_to_window" not in self.timings_ms:  # once painted
            QTimer.singleShot(
                0,
                lambda: self.timings_ms.setdefault(
                    "time_to_window", 1000 * (time.perf_counter() - self.t_start)
                ),
            )
