"""Background workers: one thread per inference engine, one for reading files, one for heat maps.

Each worker is a ``QThread`` with two inboxes: a single *latest* slot, where a newer request
replaces one still pending (the image the user is looking at), and a FIFO of background jobs
(the study list: read once, thumbnail and score) that only run when no interactive request waits.
Results travel back through signals, which Qt queues to the GUI thread; they carry the request
id so the model (:class:`kdviewer.core.viewer_model.ViewerModel`) can drop stale ones. ``stop()``
wakes the thread, lets the job in hand finish and joins it, so ``closeEvent`` never leaves a
thread running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from kdviewer.core.audit import record_inference
from kdviewer.core.display import to_display_uint8
from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import iter_image_files
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
from kdviewer.core.readpool import read_image_elsewhere
from kdviewer.core.runtime import TEACHER, lower_thread_priority, model_role
from kdviewer.core.viewer_model import HeatmapJob, PredictRequest

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 96

__all__ = ["EngineWorker", "HeatmapWorker", "LoaderWorker", "PredictRequest", "Thumbnail", "make_thumbnail"]


@dataclass(frozen=True)
class Thumbnail:
    """A study list entry's preview, or the reason it could not be read."""

    path: str
    image: QImage | None
    metadata: Any = None  # ImageMetadata
    error: str | None = None


class _InboxThread(QThread):
    """A thread serving a replaceable *latest* request first, then queued background jobs."""

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self._cond = threading.Condition()
        self._latest: Any = None
        self._batch: deque[Any] = deque()
        self._batch_taken: set[Any] = set()
        self._stopping = False

    # -- called from the GUI thread ---------------------------------------------------------
    def _put_latest(self, job: Any) -> None:
        with self._cond:
            if self._latest is not None:
                log.debug("%s: request replaced before it ran", self.objectName())
            self._latest = job
            self._cond.notify()

    def _put_batch(self, jobs: Sequence[Any]) -> None:
        with self._cond:
            self._batch.extend(jobs)
            self._cond.notify()

    def cancel_batch(self) -> None:
        """Forget queued background jobs (the one running finishes)."""
        with self._cond:
            self._batch.clear()

    def replace_batch(self, jobs: Sequence[Any], *, fresh: bool = False) -> None:
        """Queue ``jobs`` in place of the background jobs still waiting (the one running finishes).

        A job already taken up is not queued again (its result may still be on its way to the
        caller, who cannot know it yet), unless ``fresh`` says to forget what was done."""
        with self._cond:
            if fresh:
                self._batch_taken.clear()
            self._batch.clear()
            self._batch.extend(j for j in jobs if j not in self._batch_taken)
            self._cond.notify()

    @property
    def pending_batch(self) -> int:
        with self._cond:
            return len(self._batch)

    def stop(self, timeout_ms: int = 60_000) -> bool:
        """Ask the thread to finish after its current job and wait for it; True when it ended."""
        with self._cond:
            self._stopping = True
            self._latest = None
            self._batch.clear()
            self._cond.notify_all()
        self.requestInterruption()
        if not self.isRunning():
            return True
        done = self.wait(timeout_ms)
        if not done:
            log.warning("%s did not stop within %d ms; waiting for it", self.objectName(), timeout_ms)
            done = self.wait()  # never destroy a running QThread
        return done

    # -- the thread ---------------------------------------------------------------------------
    def _next_job(self) -> tuple[str, Any] | None:
        with self._cond:
            while not self._stopping and self._latest is None and not self._batch:
                self._cond.wait()
            if self._stopping:
                return None
            if self._latest is not None:
                job, self._latest = self._latest, None
                return "latest", job
            job = self._batch.popleft()
            self._batch_taken.add(job)
            return "batch", job

    @property
    def stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def _serve(self) -> None:
        while True:
            item = self._next_job()
            if item is None:
                return
            kind, job = item
            try:
                if kind == "latest":
                    self._handle_latest(job)
                else:
                    self._handle_batch(job)
            except Exception:  # a worker must outlive any single bad job
                log.exception("%s: unexpected error in %s job", self.objectName(), kind)

    def _handle_latest(self, job: Any) -> None:
        raise NotImplementedError

    def _handle_batch(self, job: Any) -> None:
        raise NotImplementedError


def _default_engine_loader(name: str) -> Callable[[], Any]:
    def load():
        # the engine module and its runtime load here, on the worker thread, not at start-up (~0.3 s)
        from kdviewer.core.engine import load_engine

        return load_engine(name)

    return load


def _default_reader(path: str):
    """The read for display: always the full resolution. Decoding runs in the reader process
    (:mod:`kdviewer.core.readpool`): the codecs hold the GIL and would otherwise freeze the GUI."""
    return read_image_elsewhere(path)


def _default_model_reader(path: str):
    """The read for the models, the same as ``kdviewer predict``'s (see MODEL_READ_MIN_SIDE),
    also in the reader process."""
    return read_image_elsewhere(path, reduce_to=MODEL_READ_MIN_SIDE)


class EngineWorker(_InboxThread):
    """Owns one inference engine: loads it off the GUI thread, then serves predictions.

    Its background jobs are study list entries: each file is read once, for a thumbnail and for
    its scores and low-resolution heat maps (what the image would get on screen, so showing it
    later needs no second inference). Without a usable engine the jobs still make thumbnails.
    """

    # Every signal leads with the worker's role ("student" / "teacher").
    engine_loaded = Signal(str, object)  # the engine
    engine_failed = Signal(str, str)  # why it could not be loaded
    prediction_ready = Signal(str, object)  # Prediction for the image on screen (request_id set)
    prediction_failed = Signal(str, int, str)  # request id, message
    study_scored = Signal(str, str, object)  # path, Prediction (low-resolution heat maps)
    study_failed = Signal(str, str, str)  # path, message
    thumbnail_ready = Signal(str, object)  # Thumbnail of a study list entry

    def __init__(
        self,
        name: str,
        loader: Callable[[], Any] | None = None,
        reader: Callable[[str], Any] | None = None,
        parent=None,
    ):
        super().__init__(f"EngineWorker-{name}", parent)
        self.name = name
        self._loader = loader or _default_engine_loader(name)
        self._reader = reader or _default_model_reader
        self.engine: Any = None
        self.load_seconds: float | None = None

    def request(self, request: PredictRequest) -> None:
        """Predict for the image on screen, replacing a request that has not started yet."""
        self._put_latest(request)

    def score_paths(self, paths: Sequence[str]) -> None:
        """Queue study list files for the background (read, thumbnail, score)."""
        self._put_batch(list(paths))

    def run(self) -> None:
        if model_role(self.name) == TEACHER:  # before loading: its ONNX Runtime threads inherit the priority
            lower_thread_priority()  # the teacher uses only what the student leaves (issue #14)
        t0 = time.perf_counter()
        try:
            engine = self._loader()
        except Exception as exc:
            log.warning("engine %s could not be loaded: %s", self.name, exc)
            self.engine_failed.emit(self.name, str(exc) or type(exc).__name__)
            engine = None
        else:
            self.load_seconds = time.perf_counter() - t0
            log.debug("engine %s loaded in %.0f ms", self.name, 1000 * self.load_seconds)
            status = getattr(engine, "status", None)
            self.engine = engine if status is None or status.usable else None
            self.engine_loaded.emit(self.name, engine)
        self._serve()  # thumbnails are still made without a usable engine

    def _handle_latest(self, req: PredictRequest) -> None:
        if self.engine is None:
            self.prediction_failed.emit(self.name, req.request_id, f"the {self.name} model is not available")
            return
        try:
            pred = self.engine.predict(
                req.image, heatmaps=req.heatmaps, cam_method=req.cam_method, request_id=req.request_id
            )
        except Exception as exc:
            log.exception("%s prediction failed", self.name)
            self.prediction_failed.emit(self.name, req.request_id, f"{type(exc).__name__}: {exc}")
            return
        self.prediction_ready.emit(self.name, pred)
        record_inference(pred, engine=self.engine, image=req.image, source="viewer")  # never raises

    def _handle_batch(self, path: str) -> None:
        try:
            image = self._reader(path)
        except Exception as exc:
            self.study_failed.emit(self.name, path, _read_error(path, exc))
            return
        try:
            self.thumbnail_ready.emit(self.name, Thumbnail(path, make_thumbnail(image), image.metadata))
        except Exception:
            log.debug("no thumbnail for %s", path, exc_info=True)
        if self.engine is None:
            return
        try:
            pred = self.engine.predict(image, heatmaps=True)  # low resolution until shown: cheap
        except Exception as exc:
            log.warning("%s could not score %s: %s", self.name, path, exc)
            self.study_failed.emit(self.name, path, f"could not be scored: {type(exc).__name__}: {exc}")
            return
        self.study_scored.emit(self.name, path, pred)
        record_inference(pred, engine=self.engine, image=image, path=path, source="viewer")  # never raises


def _read_error(path: str, exc: Exception) -> str:
    """The message for a failed read: ImageReadError names the file; anything else gets it added."""
    return str(exc) if isinstance(exc, ImageReadError) else f"{path}: {type(exc).__name__}: {exc}"


class LoaderWorker(_InboxThread):
    """Reads files off the GUI thread: the image to show (and its thumbnail), the list of files."""

    model_image_ready = Signal(int, object)  # request id, LoadedImage read for the models (first)
    image_loaded = Signal(int, object)  # request id, LoadedImage for display (full resolution)
    load_failed = Signal(int, str, str)  # request id, path, message (names the file and the cause)
    files_found = Signal(int, list)  # request id, sorted image files
    thumbnail_ready = Signal(object)  # Thumbnail of the image just read

    def __init__(self, reader: Callable[[str], Any] | None = None, parent=None):
        super().__init__("LoaderWorker", parent)
        self._reader = reader or _default_reader
        # a reader given by the caller serves both purposes
        self._model_reader = reader or _default_model_reader

    def load(self, path: str, request_id: int) -> None:
        """Read one image for display, replacing a read that has not started yet."""
        self._put_latest(("load", request_id, str(path)))

    def expand(self, paths: Sequence[str], request_id: int) -> None:
        """Find the image files in ``paths`` (files and folders, recursively, sorted)."""
        self._put_latest(("expand", request_id, [str(p) for p in paths]))

    def run(self) -> None:
        self._serve()

    def _handle_latest(self, job: tuple) -> None:
        kind, request_id, arg = job
        if kind == "expand":
            try:
                files = [str(p) for p in iter_image_files(arg)]
            except Exception as exc:
                self.load_failed.emit(request_id, ", ".join(arg), str(exc))
                return
            self.files_found.emit(request_id, files)
            return
        try:
            model_image = self._model_reader(arg)
            # The models' read comes first (a half-resolution decode for large JPEG 2000, which
            # the viewer shows as a preview and scores at once); only then the full decode.
            self.model_image_ready.emit(request_id, model_image)
            image = self._reader(arg) if getattr(model_image, "reduced", False) else model_image
        except Exception as exc:
            self.load_failed.emit(request_id, arg, _read_error(arg, exc))
            return
        self.image_loaded.emit(request_id, image)
        try:  # the list's thumbnail comes from this read rather than decoding the file again
            self.thumbnail_ready.emit(Thumbnail(arg, make_thumbnail(model_image), image.metadata))
        except Exception:
            log.debug("no thumbnail for %s", arg, exc_info=True)


class HeatmapWorker(_InboxThread):
    """Upsamples the heat map to show to the image's full size (milliseconds, but off the GUI
    thread); a newer job replaces one not started."""

    heatmap_ready = Signal(object, object)  # HeatmapJob, read-only float32 array
    heatmap_failed = Signal(object, str)  # HeatmapJob, message

    def __init__(self, parent=None):
        super().__init__("HeatmapWorker", parent)

    def compute(self, job: HeatmapJob) -> None:
        self._put_latest(job)

    def run(self) -> None:
        self._serve()

    def _handle_latest(self, job: HeatmapJob) -> None:
        try:
            heatmap = job.compute()
        except Exception as exc:
            log.exception("heat map %s failed", job.key)
            self.heatmap_failed.emit(job, f"{type(exc).__name__}: {exc}")
            return
        self.heatmap_ready.emit(job, heatmap)


def make_thumbnail(image, size: int = THUMBNAIL_SIZE) -> QImage:
    """A small greyscale preview of ``image`` in its default display window."""
    grey = np.ascontiguousarray(to_display_uint8(image))
    pil = Image.fromarray(grey)
    pil.thumbnail((size, size), Image.Resampling.BILINEAR)
    arr = np.ascontiguousarray(np.asarray(pil, dtype=np.uint8))
    h, w = arr.shape
    return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
