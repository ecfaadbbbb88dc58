"""The main window: wires the panels to the workers and keeps track of what is on screen.

The window owns three worker threads (file loader, student engine, teacher engine — the last
created only when the teacher is switched on). Every request carries an id; a result whose id is
not the latest one issued for that worker is stale and dropped. Heat maps for the image on screen
are cached per (model, CAM method, finding), so switching back and forth costs nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from kdviewer import RESEARCH_NOTICE
from kdviewer.core.findings import FINDING_KEYS, FINDINGS, finding
from kdviewer.qt.image_view import ImageView
from kdviewer.qt.metadata_strip import MetadataStrip
from kdviewer.qt.scores_panel import ROLE_TITLES, ScoresPanel
from kdviewer.qt.settings import COLORMAPS, ViewerSettings
from kdviewer.qt.study_list import StudyListPanel
from kdviewer.qt.tag_viewer import TagViewerDialog
from kdviewer.qt.telemetry_panel import TelemetryPanel
from kdviewer.qt.workers import EngineWorker, LoaderWorker, PredictRequest

log = logging.getLogger(__name__)

DEFAULT_CAM_METHOD = "gradcam"
STUDENT_START_GRACE_MS = 1500


class ViewerWindow(QMainWindow):
    """The radiologist's window: study list, image with heat map, scores, latency and power."""

    image_shown = Signal(str)  # path of the image now on screen
    image_refined = Signal(str)  # path whose full-resolution decode replaced the preview on screen
    image_load_failed = Signal(str, str)  # path, message
    engine_ready = Signal(str)  # role whose engine finished loading
    engine_unavailable = Signal(str, str)  # role, reason
    prediction_shown = Signal(str)  # role whose prediction for the image on screen is now displayed
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
        self._engine_loaders = dict(engine_loaders or {})
        self._reader = reader
        self._ids = itertools.count(1)

        self._image = None
        self._model_image = None
        self._path: str | None = None
        self._load_jobs: dict[int, dict] = {}
        self._pending_load_id: int | None = None
        self._expand_id: int | None = None
        self._workers: dict[str, EngineWorker] = {}
        self._engines: dict[str, Any] = {}
        self._unavailable: dict[str, str] = {}
        self._latest_request: dict[str, int] = {}
        self._results: dict[str, Any] = {}
        self._heatmaps: dict[tuple[str, str, str], Any] = {}
        self._finding = FINDING_KEYS[0]
        self._overlay_role = "student"
        self._cam_method = DEFAULT_CAM_METHOD
        self._teacher_on = self.settings.teacher_enabled
        self._ready_key: tuple | None = None
        self._list_scored_emitted = False
        self._closed = False
        self._tag_dialog: TagViewerDialog | None = None

        self.setWindowTitle("kdviewer — chest X-ray viewer · " + RESEARCH_NOTICE)
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._restore_settings()

        self.loader = LoaderWorker(reader=reader, parent=self)
        self.loader.model_image_ready.connect(self._on_model_image_ready)
        self.loader.image_loaded.connect(self._on_image_loaded)
        self.loader.load_failed.connect(self._on_load_failed)
        self.loader.files_found.connect(self._on_files_found)
        self.loader.thumbnail_ready.connect(self._on_thumbnail_ready)
        self.loader.start()
        self._started = False

    # ------------------------------------------------------------------------------------------
    # construction
    def _build_widgets(self) -> None:
        self.image_view = ImageView()
        self.image_view.cursor_moved.connect(self._on_cursor_moved)
        self.image_view.window_changed.connect(self._on_window_changed)
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
        cl.addWidget(self.image_view, 1)
        cl.addWidget(self.metadata_strip)

        self.study_list = StudyListPanel()
        self.study_list.study_selected.connect(self._on_study_selected)
        self.scores_panel = ScoresPanel()
        self.scores_panel.setMinimumWidth(430)
        self.scores_panel.finding_selected.connect(self.select_finding)
        self.scores_panel.teacher_toggled.connect(self.set_teacher_enabled)
        self.telemetry_panel = TelemetryPanel()

        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("rightSplitter")
        right.addWidget(self.scores_panel)
        right.addWidget(self.telemetry_panel)
        right.setStretchFactor(0, 0)
        right.setStretchFactor(1, 1)
        right.setSizes([330, 520])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.study_list)
        self.splitter.addWidget(center)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([230, 900, 460])
        self.setCentralWidget(self.splitter)

        sb = self.statusBar()
        self.cursor_label = QLabel("")
        self.window_label = QLabel("")
        self.models_label = QLabel("Loading models…")
        notice = QLabel(RESEARCH_NOTICE)
        notice.setObjectName("statusNotice")
        sb.addWidget(self.models_label, 1)
        sb.addPermanentWidget(self.cursor_label)
        sb.addPermanentWidget(self.window_label)
        sb.addPermanentWidget(notice)

        # overlay / display controls live in the toolbar
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Window/level: the file's presets, its VOI LUT, or the full range")
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.preset_combo.activated.connect(self._on_preset_activated)
        self.overlay_checkbox = QCheckBox("Heat map")
        self.overlay_checkbox.setChecked(self.settings.overlay_visible)
        self.overlay_checkbox.toggled.connect(self.set_overlay_visible)
        self.finding_combo = QComboBox()
        for i, f in enumerate(FINDINGS, start=1):
            self.finding_combo.addItem(f"{i}  {f.name}", f.key)
        self.finding_combo.activated.connect(
            lambda i: self.select_finding(self.finding_combo.itemData(i))
        )
        self.model_combo = QComboBox()
        self.model_combo.addItem("Student", "student")
        self.model_combo.addItem("Teacher", "teacher")
        self.model_combo.setToolTip("Which model's heat map is shown")
        self.model_combo.activated.connect(lambda i: self.select_overlay_model(self.model_combo.itemData(i)))
        self.method_combo = QComboBox()
        self.method_combo.addItem(DEFAULT_CAM_METHOD)
        self.method_combo.setToolTip("Explanation method (from the engine)")
        self.method_combo.activated.connect(lambda i: self.select_cam_method(self.method_combo.itemText(i)))
        self.colormap_combo = QComboBox()
        for name in COLORMAPS:
            self.colormap_combo.addItem(name)
        self.colormap_combo.setToolTip("Heat map colour map")
        self.colormap_combo.currentTextChanged.connect(self.set_colormap)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(110)
        self.opacity_slider.setToolTip("Heat map opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.set_overlay_opacity(v / 100.0))

    def _build_actions(self) -> None:
        def action(text, slot, shortcuts=(), checkable=False, tip=""):
            a = QAction(text, self)
            if shortcuts:
                a.setShortcuts([QKeySequence(s) for s in shortcuts])
            a.setCheckable(checkable)
            if tip:
                a.setToolTip(tip)
            a.triggered.connect(slot)
            self.addAction(a)  # shortcuts work wherever focus is in the window
            return a

        self.open_action = action("&Open…", self._on_open_triggered, [QKeySequence.StandardKey.Open])
        self.open_folder_action = action("Open &Folder…", self._on_open_folder_triggered, ["Ctrl+Shift+O"])
        self.next_action = action("&Next study", self.study_list.select_next, ["PgDown", "N"])
        self.prev_action = action("&Previous study", self.study_list.select_previous, ["PgUp", "P"])
        self.reset_action = action("&Reset view", self.image_view.reset_view, ["R", "Home"])
        self.invert_action = action("&Invert", self.image_view.set_inverted, ["I"], checkable=True)
        self.zoom_in_action = action("Zoom &in", lambda: self.image_view.zoom(1.25), ["+", "="])
        self.zoom_out_action = action("Zoom &out", lambda: self.image_view.zoom(0.8), ["-"])
        self.overlay_action = action("&Heat map overlay", self.overlay_checkbox.toggle, ["H"])
        self.teacher_action = action(
            "Compare with &teacher", lambda on: self.set_teacher_enabled(on), ["T"], checkable=True
        )
        self.identifiers_action = action(
            "Show patient &identifiers", self.set_show_identifiers, [], checkable=True,
            tip="Patient identifiers are hidden by default",
        )
        self.tags_action = action("DICOM &tags…", self.show_tags, ["Ctrl+D"])
        self.quit_action = action("&Quit", self.close, [QKeySequence.StandardKey.Quit])
        self.export_action = action("Export telemetry &CSV…", self.telemetry_panel._on_export_clicked, [])
        self.finding_actions = []
        for i, f in enumerate(FINDINGS, start=1):
            choose = action(f.name, lambda _=False, k=f.key: self.select_finding(k), [str(i)])
            self.finding_actions.append(choose)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.open_action)
        m.addAction(self.open_folder_action)
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        m.addAction(self.export_action)
        m.addSeparator()
        m.addAction(self.quit_action)
        m = mb.addMenu("&View")
        for a in (self.next_action, self.prev_action, None, self.reset_action, self.zoom_in_action,
                  self.zoom_out_action, self.invert_action, None, self.overlay_action, None,
                  self.identifiers_action, self.tags_action):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Findings")
        for a in self.finding_actions:
            m.addAction(a)
        m = mb.addMenu("&Models")
        m.addAction(self.teacher_action)
        self._rebuild_recent_menu()

        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addAction(self.open_action)
        tb.addAction(self.open_folder_action)
        tb.addSeparator()
        tb.addAction(self.prev_action)
        tb.addAction(self.next_action)
        tb.addSeparator()
        tb.addWidget(QLabel(" W/L "))
        tb.addWidget(self.preset_combo)
        tb.addAction(self.invert_action)
        tb.addAction(self.reset_action)
        tb.addSeparator()
        tb.addWidget(self.overlay_checkbox)
        tb.addWidget(self.finding_combo)
        tb.addWidget(self.model_combo)
        tb.addWidget(self.method_combo)
        tb.addWidget(self.colormap_combo)
        holder = QWidget()
        hl = QHBoxLayout(holder)
        hl.setContentsMargins(6, 0, 6, 0)
        hl.addWidget(QLabel("opacity"))
        hl.addWidget(self.opacity_slider)
        tb.addWidget(holder)
        tb.addSeparator()
        tb.addAction(self.identifiers_action)
        tb.addAction(self.tags_action)

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.geometry
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1600, 980)
        self.opacity_slider.setValue(round(s.overlay_opacity * 100))
        self.image_view.set_overlay_opacity(s.overlay_opacity)
        self.colormap_combo.setCurrentText(s.colormap)
        self.image_view.set_colormap(s.colormap)
        self.image_view.set_overlay_visible(s.overlay_visible)
        self.scores_panel.set_teacher_enabled(self._teacher_on)
        self.teacher_action.setChecked(self._teacher_on)
        self._update_model_combo()
        self.scores_panel.set_selected_finding(self._finding)
        if not self._teacher_on:
            self.scores_panel.set_pending("teacher", "off")

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
        QTimer.singleShot(STUDENT_START_GRACE_MS, self._start_student)
        if self._teacher_on:
            # the teacher starts once the student has its first result, so first scores come sooner
            self.scores_panel.set_pending("teacher", "waiting…")

    def _start_student(self) -> None:
        if self._started and not self._closed:
            self._ensure_worker("student")

    def _ensure_worker(self, role: str) -> EngineWorker | None:
        if self._closed:
            return None
        worker = self._workers.get(role)
        if worker is None:
            loader = self._engine_loaders.get(role)
            worker = EngineWorker(role, loader=loader, reader=self._reader, parent=self)
            worker.engine_loaded.connect(self._on_engine_loaded)
            worker.engine_failed.connect(self._on_engine_failed)
            worker.prediction_ready.connect(self._on_prediction_ready)
            worker.prediction_failed.connect(self._on_prediction_failed)
            worker.study_scored.connect(self._on_study_scored)
            worker.study_failed.connect(self._on_study_failed)
            self._workers[role] = worker
            self.scores_panel.set_pending(role, "loading…")
            self._update_models_label()
            worker.start()
        return worker

    def worker_threads(self) -> list:
        """Every QThread this window started (for clean-shutdown checks)."""
        return [self.loader, *self._workers.values()]

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
        for thread in self.worker_threads():
            thread.stop()
        if self._tag_dialog is not None:
            self._tag_dialog.close()

    def closeEvent(self, event):  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def _save_settings(self) -> None:
        s = self.settings
        s.geometry = self.saveGeometry()
        s.overlay_opacity = self.opacity_slider.value() / 100.0
        s.colormap = self.colormap_combo.currentText()
        s.overlay_visible = self.overlay_checkbox.isChecked()
        if "teacher" not in self._unavailable:
            s.teacher_enabled = self._teacher_on
        s.sync()

    # ------------------------------------------------------------------------------------------
    # opening
    def open_example(self) -> None:
        from kdviewer.core.resources import example_image

        try:
            path = str(example_image())
        except FileNotFoundError as exc:
            self._show_error("Built-in example missing", str(exc))
            return
        self.open_paths([path])

    def open_paths(self, paths: Sequence[str]) -> None:
        """Open files and/or folders; the study list is replaced once something readable is found."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if not any(Path(p).is_dir() for p in paths):  # files (a missing one is reported on load)
            self._request_load(paths[0], studies=paths)
        else:
            self._expand_id = next(self._ids)
            self.loader.expand(paths, self._expand_id)
        first = Path(paths[0])
        self.settings.last_folder = str(first if first.is_dir() else first.parent)

    def _request_load(self, path: str, studies: list[str] | None = None) -> None:
        rid = next(self._ids)
        self._pending_load_id = rid
        self._load_jobs = {rid: {"path": path, "studies": studies}}
        self.models_label.setText(f"Reading {Path(path).name}…")
        self.loader.load(path, rid)

    def _on_files_found(self, request_id: int, files: list) -> None:
        if request_id != self._expand_id:
            return
        if not files:
            self._show_error("No images found", "No DICOM, PNG or JPEG files were found there.")
            return
        self._install_studies(files)
        self._request_load(files[0])

    def _install_studies(self, files: list[str]) -> None:
        self.study_list.set_studies(files, current=files[0])
        self._list_scored_emitted = False
        self.loader.cancel_batch()
        self.loader.make_thumbnails(files)
        student = self._workers.get("student")
        if student is not None:
            student.cancel_batch()
        if "student" in self._engines:
            self._score_study_list()

    def _score_study_list(self) -> None:
        paths = self.study_list.paths()
        worker = self._workers.get("student")
        if worker is not None and paths:
            worker.score_paths(paths)

    def _on_model_image_ready(self, request_id: int, image) -> None:
        job = self._load_jobs.get(request_id)
        if request_id != self._pending_load_id or job is None:
            return
        job["model_image"] = image
        if getattr(image, "reduced", False):
            # A large JPEG 2000: show the half-resolution decode at once (it is what the models
            # score) and swap in the full decode when it arrives.
            job["previewed"] = True
            if job["studies"] is not None:
                self._install_studies(job["studies"])
                job["studies"] = None
            self._show_image(image, job["path"], image)

    def _on_image_loaded(self, request_id: int, image) -> None:
        job = self._load_jobs.pop(request_id, None)
        if request_id != self._pending_load_id or job is None:
            log.debug("dropping stale image %s", getattr(image, "path", "?"))
            return
        self._pending_load_id = None
        if job.get("previewed") and self._path == job["path"]:
            self._refine_image(image)
            return
        if job["studies"] is not None:
            self._install_studies(job["studies"])
        self._show_image(image, job["path"], job.get("model_image"))

    def _refine_image(self, image) -> None:
        """The full-resolution decode replaces the preview; scores and heat maps stay."""
        self._image = image
        self.image_view.replace_image(image)
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._refresh_tags()
        self.image_refined.emit(self._path)
        self._check_ready()

    def _on_load_failed(self, request_id: int, path: str, message: str) -> None:
        if request_id == self._expand_id:
            self._start_student()
            self._show_error("Cannot open", message)
            return
        job = self._load_jobs.pop(request_id, None)
        if request_id != self._pending_load_id or job is None:
            return
        self._pending_load_id = None
        self.study_list.set_error(path, message)
        if self._path:
            self.study_list.select_path(self._path)  # the image on screen stays the current one
        self.models_label.setText(f"Could not read {Path(path).name}")
        self.image_load_failed.emit(path, message)
        self._start_student()
        self._show_error("Cannot open image", message)

    def _show_error(self, title: str, message: str) -> None:
        """Tell the user; tests replace QMessageBox.warning to record instead of block."""
        QMessageBox.warning(self, title, message)

    def _show_image(self, image, path: str, model_image=None) -> None:
        self._image = image
        # what the models score: the model path's read (reduced for large JPEG 2000), as in predict
        self._model_image = model_image if model_image is not None else image
        self._path = path
        self._results.clear()
        self._heatmaps.clear()
        self._ready_key = None
        self.image_view.set_image(image)
        self._fill_presets(image)
        self.metadata_strip.set_metadata(image.metadata, path)
        self.study_list.select_path(path)
        self.settings.add_recent(path)
        self._rebuild_recent_menu()
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._refresh_tags()
        for role in self._active_roles():
            self.scores_panel.set_pending(role, "…" if role in self._engines else "loading…")
        self._update_models_label()
        self.timings_ms.setdefault("time_to_image", 1000 * (time.perf_counter() - self.t_start))
        self.image_shown.emit(path)
        self._start_student()
        self._request_predictions()

    def _on_study_selected(self, path: str) -> None:
        if path != self._path:
            self._request_load(path)

    # ------------------------------------------------------------------------------------------
    # models
    def _active_roles(self) -> list[str]:
        roles = ["student"]
        if self._teacher_on and "teacher" not in self._unavailable:
            roles.append("teacher")
        return roles

    def _usable(self, role: str) -> bool:
        engine = self._engines.get(role)
        return engine is not None and engine.status.usable

    def _request_predictions(self) -> None:
        if self._image is None:
            return
        key = (self._cam_method, self._finding)
        for role in self._active_roles():
            if not self._usable(role):
                continue
            if role in self._results and (role, *key) in self._heatmaps:
                continue
            rid = next(self._ids)
            self._latest_request[role] = rid
            self._workers[role].request(
                PredictRequest(rid, self._model_image, heatmaps=(self._finding,), cam_method=self._cam_method)
            )
        self._check_ready()

    def _on_engine_loaded(self, role: str, engine) -> None:
        if self._closed:
            return
        self._engines[role] = engine
        self.scores_panel.set_model(role, engine)
        self.telemetry_panel.set_engine(role, engine)
        self._fill_cam_methods()
        self._update_models_label()
        self.engine_ready.emit(role)
        if not engine.status.usable:
            self.scores_panel.set_pending(role, "not used")
            if role == "student":
                self._maybe_start_teacher()
            self._check_ready()
            return
        if role == "student" and self.study_list.paths():
            self._score_study_list()
        if role == "student" and self._image is None:
            self._maybe_start_teacher()
        self._request_predictions()

    def _on_engine_failed(self, role: str, reason: str) -> None:
        if self._closed:
            return
        self._unavailable[role] = reason
        if role == "teacher":
            self._teacher_on = False
            self.scores_panel.set_teacher_enabled(False)
            self.scores_panel.set_teacher_available(False, f"Teacher unavailable: {reason}")
            self.teacher_action.setEnabled(False)
            self.teacher_action.setChecked(False)
            self.teacher_action.setToolTip(f"Teacher unavailable: {reason}")
            self._update_model_combo()
        else:
            self.scores_panel.set_model_unavailable(role, reason)
            self._maybe_start_teacher()
        self._update_models_label()
        self.engine_unavailable.emit(role, reason)
        self._check_ready()

    def _maybe_start_teacher(self) -> None:
        if self._teacher_on and "teacher" not in self._unavailable and not self._closed:
            self._ensure_worker("teacher")

    def _fill_cam_methods(self) -> None:
        if self.method_combo.count() > 1:
            return
        try:
            from kdviewer.core.engine import CAM_METHODS
        except ImportError:
            return
        self.method_combo.clear()
        self.method_combo.addItems(list(CAM_METHODS))
        self.method_combo.setCurrentText(self._cam_method)

    def _on_prediction_ready(self, role: str, pred) -> None:
        if self._closed or pred.request_id != self._latest_request.get(role):
            log.debug("dropping stale %s prediction %s", role, pred.request_id)
            return
        if role == "teacher" and not self._teacher_on:
            return
        self._results[role] = pred
        for key, heatmap in pred.heatmaps.items():
            self._heatmaps[(role, pred.cam_method or self._cam_method, key)] = heatmap
        self.scores_panel.set_prediction(role, pred)
        if role == "student":
            if self._path:
                self.study_list.set_score(self._path, pred)
                self._check_list_scored()
            if "time_to_first_scores" not in self.timings_ms:
                self.timings_ms["time_to_first_scores"] = 1000 * (time.perf_counter() - self.t_start)
                log.debug("time to first scores: %.0f ms", self.timings_ms["time_to_first_scores"])
            self._maybe_start_teacher()
        self._update_overlay()
        self._update_models_label()
        self.prediction_shown.emit(role)
        self._check_ready()

    def _on_prediction_failed(self, role: str, request_id: int, message: str) -> None:
        if request_id != self._latest_request.get(role):
            return
        self.scores_panel.set_pending(role, "failed")
        self.statusBar().showMessage(f"{ROLE_TITLES[role]} failed on this image: {message}", 10_000)
        if role == "student":
            self._maybe_start_teacher()

    def _on_study_scored(self, role: str, path: str, pred) -> None:
        self.study_list.set_score(path, pred)
        self._check_list_scored()

    def _on_study_failed(self, role: str, path: str, message: str) -> None:
        self.study_list.set_error(path, message)
        self._check_list_scored()

    def _check_list_scored(self) -> None:
        paths = self.study_list.paths()
        if paths and not self._list_scored_emitted and self.study_list.scored_count >= len(paths):
            self._list_scored_emitted = True
            self.study_list_scored.emit()

    def is_view_complete(self) -> bool:
        """True when the full-resolution image is shown and every active, usable model has shown its
        scores and the selected heat map."""
        if self._image is None or self._image.reduced:
            return False
        for role in self._active_roles():
            if role not in self._engines:
                return False  # still loading
            if not self._usable(role):
                continue
            if role not in self._results or (role, self._cam_method, self._finding) not in self._heatmaps:
                return False
        return True

    def _check_ready(self) -> None:
        key = (self._path, self._cam_method, self._finding, tuple(self._active_roles()))
        if self._ready_key != key and self.is_view_complete():
            self._ready_key = key
            self.view_ready.emit()

    def _update_models_label(self) -> None:
        parts = []
        for role in ("student", "teacher"):
            if role == "teacher" and not self._teacher_on:
                continue
            if role in self._unavailable:
                parts.append(f"{ROLE_TITLES[role]}: unavailable")
            elif role not in self._workers:
                parts.append(f"{ROLE_TITLES[role]}: waiting")
            elif role not in self._engines:
                parts.append(f"{ROLE_TITLES[role]}: loading…")
            else:
                status = self._engines[role].status
                parts.append(f"{ROLE_TITLES[role]}: {status.state}")
        self.models_label.setText("   ".join(parts))
        untrained = [ROLE_TITLES[r] for r in self._active_roles()
                     if r in self._engines and self._engines[r].status.state == "untrained"]
        failed = [ROLE_TITLES[r] for r in self._active_roles()
                  if r in self._engines and not self._engines[r].status.usable]
        banner = []
        if untrained:
            who = " and ".join(untrained)
            banner.append(f"{who}: UNTRAINED (random weights) — scores and heat maps are meaningless")
        if failed:
            banner.append(f"{' and '.join(failed)}: failed self-test — not used")
        self.untrained_banner.setText("   ·   ".join(banner))
        self.untrained_banner.setVisible(bool(banner))

    # ------------------------------------------------------------------------------------------
    # user choices
    def select_finding(self, key: str) -> None:
        key = finding(key).key
        self._finding = key
        self.finding_combo.setCurrentIndex(FINDING_KEYS.index(key))
        self.scores_panel.set_selected_finding(key)
        self._update_overlay()
        self._request_predictions()

    def select_overlay_model(self, role: str) -> None:
        if role == "teacher" and "teacher" not in self._active_roles():
            role = "student"
        self._overlay_role = role
        self.model_combo.setCurrentIndex(0 if role == "student" else 1)
        self._update_overlay()

    def select_cam_method(self, method: str) -> None:
        self._cam_method = method
        if self.method_combo.currentText() != method:
            self.method_combo.setCurrentText(method)
        self._update_overlay()
        self._request_predictions()

    def set_teacher_enabled(self, on: bool) -> None:
        on = bool(on) and "teacher" not in self._unavailable
        self._teacher_on = on
        self.settings.teacher_enabled = on
        self.teacher_action.setChecked(on)
        self.scores_panel.set_teacher_enabled(on)
        if on:
            worker = self._workers.get("teacher")
            if worker is None:
                self._ensure_worker("teacher")
            else:
                self.scores_panel.set_pending("teacher")
                if "teacher" in self._results:
                    self.scores_panel.set_prediction("teacher", self._results["teacher"])
            self._request_predictions()
        else:
            if self._overlay_role == "teacher":
                self._overlay_role = "student"
        self._update_model_combo()
        self._update_overlay()
        self._update_models_label()
        self._check_ready()

    @property
    def teacher_enabled(self) -> bool:
        return self._teacher_on

    def _update_model_combo(self) -> None:
        item = self.model_combo.model().item(1)
        item.setEnabled(self._teacher_on)
        if not self._teacher_on and self._overlay_role == "teacher":
            self._overlay_role = "student"
        self.model_combo.setCurrentIndex(0 if self._overlay_role == "student" else 1)

    def set_overlay_visible(self, on: bool) -> None:
        self.overlay_checkbox.setChecked(on)
        self.image_view.set_overlay_visible(on)
        self.settings.overlay_visible = on

    def set_overlay_opacity(self, opacity: float) -> None:
        self.image_view.set_overlay_opacity(opacity)
        self.settings.overlay_opacity = opacity

    def set_colormap(self, name: str) -> None:
        self.image_view.set_colormap(name)
        self.settings.colormap = name

    def set_show_identifiers(self, on: bool) -> None:
        self.identifiers_action.setChecked(on)
        self.metadata_strip.set_show_identifiers(on)
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._refresh_tags()

    def show_tags(self) -> TagViewerDialog:
        if self._tag_dialog is None:
            self._tag_dialog = TagViewerDialog(self)
        self._refresh_tags()
        self._tag_dialog.show()
        self._tag_dialog.raise_()
        return self._tag_dialog

    def _refresh_tags(self) -> None:
        ds = getattr(self._image, "dataset", None) if self._image is not None else None
        self._tag_dialog.set_dataset(
            ds, show_identifiers=self.identifiers_action.isChecked(), title=Path(self._path or "").name
        )

    def _update_overlay(self) -> None:
        heatmap = self._heatmaps.get((self._overlay_role, self._cam_method, self._finding))
        self.image_view.set_heatmap(heatmap)

    @property
    def current_heatmap_key(self) -> tuple[str, str, str]:
        return (self._overlay_role, self._cam_method, self._finding)

    @property
    def current_path(self) -> str | None:
        return self._path

    @property
    def current_image(self):
        return self._image

    def prediction(self, role: str):
        """The prediction shown for ``role`` on the image on screen (None if none yet)."""
        return self._results.get(role)

    # ------------------------------------------------------------------------------------------
    # window / level presets
    def _fill_presets(self, image) -> None:
        from kdviewer.core.display import full_range_window

        combo = self.preset_combo
        combo.clear()
        if image.voi_lut is not None:
            combo.addItem("VOI LUT (file)", ("voi", None))
        for i, w in enumerate(image.windows, start=1):
            label = w.explanation if w.explanation and len(w.explanation) < 24 else f"Preset {i}"
            combo.addItem(f"{label}: C {w.center:g} W {w.width:g}", ("window", w))
        combo.addItem("Full range", ("window", full_range_window(image.value_range)))
        combo.setCurrentIndex(0)  # the view starts from the same rule (see ImageView.set_image)

    def _on_preset_activated(self, index: int) -> None:
        kind, window = self.preset_combo.itemData(index)
        if kind == "voi":
            self.image_view.apply_voi_lut()
        else:
            self.image_view.set_window(window.center, window.width)

    def _on_window_changed(self, center: float, width: float) -> None:
        self.window_label.setText(f"C {center:.0f}  W {width:.0f}")

    def _on_cursor_moved(self, info) -> None:
        if info is None:
            self.cursor_label.setText("")
        else:
            col, row, value = info
            self.cursor_label.setText(f"x {col}  y {row}  value {value:g}")

    # ------------------------------------------------------------------------------------------
    # files: dialogs, recent, drag and drop
    def _on_open_triggered(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open images", self.settings.last_folder,
            "Images (*.dcm *.dicom *.png *.jpg *.jpeg);;All files (*)",
        )
        if paths:
            self.open_paths(paths)

    def _on_open_folder_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self.settings.last_folder)
        if folder:
            self.open_paths([folder])

    def _rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.settings.recent_files
        for path in recent:
            a = menu.addAction(Path(path).name)
            a.setToolTip(path)
            a.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if recent:
            menu.addSeparator()
            menu.addAction("Clear", self._on_clear_recent_triggered)
        menu.setEnabled(bool(recent))

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

    # ------------------------------------------------------------------------------------------
    def _on_thumbnail_ready(self, thumb) -> None:
        self.study_list.set_thumbnail(thumb)

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        if "time_to_window" not in self.timings_ms:
            QTimer.singleShot(0, self._on_first_shown)

    def _on_first_shown(self) -> None:
        self.timings_ms.setdefault("time_to_window", 1000 * (time.perf_counter() - self.t_start))
        log.debug("time to window: %.0f ms", self.timings_ms["time_to_window"])
