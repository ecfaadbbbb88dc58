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
    def _live(self) -> bool:
        return not self._closed

    def _on_model_image_ready(self, request_id: int, image) -> None:
        if self._live():
            self.model.model_image_ready(request_id, image)

    def _on_image_loaded(self, request_id: int, image) -> None:
        if self._live():
            self.model.image_loaded(request_id, image)

    def _on_load_failed(self, request_id: int, path: str, message: str) -> None:
        if self._live():
            self.model.load_failed(request_id, path, message)

    def _on_files_found(self, request_id: int, files: list) -> None:
        if self._live():
            self.model.files_found(request_id, files)

    def _on_engine_loaded(self, role: str, engine) -> None:
        if self._live():
            self.model.engine_loaded(role, engine)

    def _on_engine_failed(self, role: str, reason: str) -> None:
        if self._live():
            self.model.engine_failed(role, reason)

    def _on_prediction_ready(self, role: str, pred) -> None:
        if self._live():
            self.model.prediction_ready(role, pred)

    def _on_prediction_failed(self, role: str, request_id: int, message: str) -> None:
        if self._live():
            self.model.prediction_failed(role, request_id, message)

    def _on_study_scored(self, _role: str, path: str, pred) -> None:
        if self._live():
            self.model.study_scored(path, pred)

    def _on_study_failed(self, _role: str, path: str, message: str) -> None:
        if self._live():
            self.model.study_failed(path, message)

    def _on_study_thumbnail(self, _role: str, thumb) -> None:
        self.thumbnail_ready.emit(thumb)

    def _on_heatmap_ready(self, job, heatmap) -> None:
        if self._live():
            self.model.heatmap_ready(job, heatmap)

    def _on_heatmap_failed(self, job, message: str) -> None:
        if self._live():
            self.model.heatmap_failed(job, message)
