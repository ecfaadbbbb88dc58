"""Connects the Qt-free :class:`~kdviewer.core.viewer_model.ViewerModel` to the worker threads.

The model asks for work through its events; this forwards each request to the worker that does
it, and each result back to the model. Worker signals arrive here as queued calls on the GUI
thread (the slots are methods of this QObject), so the model is only ever touched from one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from kdviewer.core.viewer_model import ViewerModel
from kdviewer.qt.workers import EngineWorker, HeatmapWorker, LoaderWorker

log = logging.getLogger(__name__)


def _to_model(event: str, *, drop_role: bool = False):
    """A slot handing a worker's signal to the model's method ``event`` unless the controller has
    stopped; ``drop_role`` leaves out the signal's leading role. Assigned in the class body, it is a
    method of the QObject, so Qt queues each call to the GUI thread."""

    def slot(self, *args) -> None:
        if not self._closed:
            getattr(self.model, event)(*(args[1:] if drop_role else args))

    slot.__name__ = f"_on_{event}"
    return slot


class ViewerController(QObject):
    """Owns the worker threads: the file loader, the heat-map upsampler and one per engine."""

    thumbnail_ready = Signal(object)  # Thumbnail, from whichever worker read the file

    def __init__(
        self,
        model: ViewerModel,
        *,
        engine_loaders: dict[str, Callable[[], Any]] | None = None,
        reader: Callable[[str], Any] | None = None,
        parent=None,
    ):
        super().__init__(parent)
        self.model = model
        self._engine_loaders = dict(engine_loaders or {})
        self._reader = reader
        self._batch: list[str] = []
        self._closed = False
        self.workers: dict[str, EngineWorker] = {}

        self.loader = LoaderWorker(reader=reader, parent=self)
        self.loader.model_image_ready.connect(self._on_model_image_ready)
        self.loader.image_loaded.connect(self._on_image_loaded)
        self.loader.load_failed.connect(self._on_load_failed)
        self.loader.files_found.connect(self._on_files_found)
        self.loader.thumbnail_ready.connect(self.thumbnail_ready)
        self.heatmapper = HeatmapWorker(parent=self)
        self.heatmapper.heatmap_ready.connect(self._on_heatmap_ready)
        self.heatmapper.heatmap_failed.connect(self._on_heatmap_failed)

        events = model.events
        events.load_requested.connect(lambda rid, path: self.loader.load(path, rid))
        events.expand_requested.connect(lambda rid, paths: self.loader.expand(paths, rid))
        events.batch_changed.connect(self._on_batch_changed)
        events.engine_wanted.connect(self.ensure_worker)
        events.prediction_requested.connect(lambda role, req: self.workers[role].request(req))
        events.heatmap_requested.connect(self.heatmapper.compute)

        self.loader.start()
        self.heatmapper.start()

    def ensure_worker(self, role: str) -> EngineWorker | None:
        """Start ``role``'s worker (its engine loads on that thread) unless it runs already."""
        if self._closed:
            return None
        worker = self.workers.get(role)
        if worker is None:
            worker = EngineWorker(
                role, loader=self._engine_loaders.get(role), reader=self._reader, parent=self
            )
            worker.engine_loaded.connect(self._on_engine_loaded)
            worker.engine_failed.connect(self._on_engine_failed)
            worker.prediction_ready.connect(self._on_prediction_ready)
            worker.prediction_failed.connect(self._on_prediction_failed)
            worker.study_scored.connect(self._on_study_scored)
            worker.study_failed.connect(self._on_study_failed)
            worker.thumbnail_ready.connect(self._on_study_thumbnail)
            self.workers[role] = worker
            if role == "student":
                worker.replace_batch(self._batch)
            worker.start()
            self.model.engine_started(role)
        return worker

    def threads(self) -> list:
        """Every QThread started here (for clean-shutdown checks)."""
        return [self.loader, self.heatmapper, *self.workers.values()]

    def stop(self) -> None:
        """Stop every worker thread (each finishes the job in hand); safe to call twice."""
        self._closed = True
        for thread in self.threads():
            thread.stop()

    # -- model -> workers ---------------------------------------------------------------------
    def _on_batch_changed(self, paths: list[str], fresh: bool) -> None:
        self._batch = list(paths)
        student = self.workers.get("student")
        if student is not None:
            student.replace_batch(self._batch, fresh=fresh)

    # -- workers -> model (queued to the GUI thread) --------------------------------------------
    _on_model_image_ready = _to_model("model_image_ready")
    _on_image_loaded = _to_model("image_loaded")
    _on_load_failed = _to_model("load_failed")
    _on_files_found = _to_model("files_found")
    _on_engine_loaded = _to_model("engine_loaded")
    _on_engine_failed = _to_model("engine_failed")
    _on_prediction_ready = _to_model("prediction_ready")
    _on_prediction_failed = _to_model("prediction_failed")
    _on_study_scored = _to_model("study_scored", drop_role=True)
    _on_study_failed = _to_model("study_failed", drop_role=True)
    _on_heatmap_ready = _to_model("heatmap_ready")
    _on_heatmap_failed = _to_model("heatmap_failed")

    def _on_study_thumbnail(self, _role: str, thumb) -> None:
        self.thumbnail_ready.emit(thumb)
