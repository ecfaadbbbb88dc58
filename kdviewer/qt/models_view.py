"""How the models' state shows: the scores panel, the telemetry panel, the status bar's model line,
the untrained banner and the teacher switch, all rendered from the viewer's model."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from kdviewer.qt.scores_panel import ROLE_TITLES
from kdviewer.qt.status_bar import models_summary


class ModelsView(QObject):
    """Subscribes to a :class:`~kdviewer.core.viewer_model.ViewerModel`'s model events."""

    engine_ready = Signal(str)  # role whose engine finished loading
    engine_unavailable = Signal(str, str)  # role, reason
    prediction_shown = Signal(str)  # role whose prediction for the image on screen is now displayed

    def __init__(
        self, model, *, scores_panel, telemetry_panel, status_bar, banner, teacher_action, parent=None
    ):
        super().__init__(parent)
        self.model = model
        self.scores = scores_panel
        self.telemetry = telemetry_panel
        self.status = status_bar
        self.banner = banner
        self.teacher_action = teacher_action
        self._shown: set[str] = set()
        model.events.prediction_changed.connect(self._on_prediction_changed)
        model.events.prediction_failed.connect(self._on_prediction_failed)
        model.events.engines_changed.connect(self._on_engines_changed)
        model.events.image_changed.connect(self._on_image_changed)
        model.events.selection_changed.connect(self._on_selection_changed)

    def _pending(self, role: str) -> str:
        """What a model's column says until its scores for the image on screen come."""
        m = self.model
        if m.image is None:
            return "—"
        if role not in m.engines:
            return "loading…" if role in m.wanted else "waiting…"
        return "…" if m.usable(role) else "not used"

    def _on_image_changed(self, _path: str, _image) -> None:
        for role in self.model.active_roles():
            self.scores.set_pending(role, self._pending(role))
        self.update_summary()

    def _on_prediction_changed(self, role: str, pred) -> None:
        if role == "teacher" and not self.model.teacher_enabled:
            return
        self.scores.set_prediction(role, pred)
        self.update_summary()
        self.prediction_shown.emit(role)

    def _on_prediction_failed(self, role: str, message: str) -> None:
        self.scores.set_pending(role, "failed")
        self.status.showMessage(f"{ROLE_TITLES[role]} failed on this image: {message}")

    def _on_selection_changed(self) -> None:
        on = self.model.teacher_enabled
        self.teacher_action.setChecked(on)
        self.scores.set_teacher_enabled(on)
        self.scores.set_selected_finding(self.model.finding)
        if not on:
            self.scores.set_pending("teacher", "off")
        elif self.model.prediction("teacher") is None:
            self.scores.set_pending("teacher", self._pending("teacher"))
        self.update_summary()

    def _on_engines_changed(self, role: str) -> None:
        m = self.model
        engine = m.engines.get(role)
        if role in m.unavailable:
            reason = m.unavailable[role]
            if role == "teacher":
                self.scores.set_teacher_available(False, f"Teacher unavailable: {reason}")
                self.teacher_action.setEnabled(False)
                self.teacher_action.setToolTip(f"Teacher unavailable: {reason}")
            else:
                self.scores.set_model_unavailable(role, reason)
            self.engine_unavailable.emit(role, reason)
        elif engine is not None and role not in self._shown:
            self._shown.add(role)
            self.scores.set_model(role, engine)
            self.telemetry.set_engine(role, engine)
            if m.prediction(role) is None and role in m.active_roles():
                self.scores.set_pending(role, self._pending(role))
            self.engine_ready.emit(role)
        elif engine is None and role in m.active_roles():
            self.scores.set_pending(role, self._pending(role))
        self.update_summary()

    def update_summary(self) -> None:
        text, banner = models_summary(self.model)
        self.status.models_label.setText(text)
        self.banner.setText(banner)
        self.banner.setVisible(bool(banner))
