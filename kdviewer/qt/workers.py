"""Background workers: one thread per inference engine, one for reading files.

Each worker is a ``QThread`` with two inboxes: a single *latest* slot, where a newer request
replaces one still pending (the image the user is looking at), and a FIFO of background jobs
(scoring or thumbnailing the study list) that only run when no interactive request waits.
Results travel back through signals, which Qt queues to the GUI thread; they carry the request
id so the window can drop stale ones. ``stop()`` wakes the thread, lets the job in hand finish
and joins it, so ``closeEvent`` never leaves a thread running.
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
from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 96


@dataclass(frozen=True)
class PredictRequest:
    """What the window asks an engine for the image on screen."""

    request_id: int
    image: Any  # LoadedImage
    heatmaps: bool | tuple[str, ...]
    cam_method: str


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
            return "batch", self._batch.popleft()

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
        from kdviewer.core.engine import load_engine

        return load_engine(name)

    return load


def _default_reader(path: str):
    """The read for display: always the full resolution. Decoding runs in the reader process
    (:mod:`kdviewer.core.readpool`): the codecs hold the GIL and would otherwise freeze the GUI."""
    from kdviewer.core.readpool import read_image_elsewhere

    return read_image_elsewhere(path)


def _default_model_reader(path: str):
    """The read for the models, the same as ``kdviewer predict``'s (see MODEL_READ_MIN_SIDE),
    also in the reader process."""
    from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
    from kdviewer.core.readpool import read_image_elsewhere

    return read_image_elsewhere(path, reduce_to=MODEL_READ_MIN_SIDE)


class EngineWorker(_InboxThread):
    """Owns one inference engine: loads it off the GUI thread, then serves predictions."""

    # Every signal leads with the worker's role ("student" / "teacher").
    engine_loaded = Signal(str, object)  # the engine
    engine_failed = Signal(str, str)  # why it could not be loaded
    prediction_ready = Signal(str, object)  # Prediction for the image on screen (request_id set)
    prediction_failed = Signal(str, int, str)  # request id, message
    study_scored = Signal(str, str, object)  # path, Prediction (no heat maps)
    study_failed = Signal(str, str, str)  # path, message

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
        """Queue files for background scoring (scores only, no heat maps)."""
        self._put_batch(list(paths))

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            engine = self._loader()
        except Exception as exc:
            log.warning("engine %s could not be loaded: %s", self.name, exc)
            self.engine_failed.emit(self.name, str(exc) or type(exc).__name__)
            return
        self.engine = engine
        self.load_seconds = time.perf_counter() - t0
        log.debug("engine %s loaded in %.0f ms", self.name, 1000 * self.load_seconds)
        self.engine_loaded.emit(self.name, engine)
        status = getattr(engine, "status", None)
        if status is not None and not status.usable:
            return  # shown as "failed self-test"; nothing to serve
        self._serve()

    def _handle_latest(self, req: PredictRequest) -> None:
        try:
            pred = self.engine.predict(
                req.image, heatmaps=req.heatmaps, cam_method=req.cam_method, request_id=req.request_id
            )
        except Exception as exc:
            log.exception("%s prediction failed", self.name)
            self.prediction_failed.emit(self.name, req.request_id, f"{type(exc).__name__}: {exc}")
            return
        self.prediction_ready.emit(self.name, pred)

    def _handle_batch(self, path: str) -> None:
        try:
            image = self._reader(path)
            pred = self.engine.predict(image, heatmaps=False)
        except Exception as exc:
            self.study_failed.emit(self.name, path, str(exc))
            return
        self.study_scored.emit(self.name, path, pred)


class LoaderWorker(_InboxThread):
    """Reads files off the GUI thread: the image to show, the list of files, thumbnails."""

    model_image_ready = Signal(int, object)  # request id, LoadedImage read for the models (first)
    image_loaded = Signal(int, object)  # request id, LoadedImage for display (full resolution)
    load_failed = Signal(int, str, str)  # request id, path, message (names the file and the cause)
    files_found = Signal(int, list)  # request id, sorted image files
    thumbnail_ready = Signal(object)  # Thumbnail

    def __init__(self, reader: Callable[[str], Any] | None = None, parent=None):
        super().__init__("LoaderWorker", parent)
        self._reader = reader or _default_reader
        # a reader given by the caller serves both purposes
        self._model_reader = reader or _default_model_reader
        self._thumbnails: dict[str, Thumbnail] = {}  # made from images read for display

    def load(self, path: str, request_id: int) -> None:
        """Read one image for display, replacing a read that has not started yet."""
        self._put_latest(("load", request_id, str(path)))

    def expand(self, paths: Sequence[str], request_id: int) -> None:
        """Find the image files in ``paths`` (files and folders, recursively, sorted)."""
        self._put_latest(("expand", request_id, [str(p) for p in paths]))

    def make_thumbnails(self, paths: Sequence[str]) -> None:
        self._put_batch(list(paths))

    def run(self) -> None:
        self._serve()

    def _handle_latest(self, job: tuple) -> None:
        kind, request_id, arg = job
        if kind == "expand":
            from kdviewer.core.imageio import iter_image_files

            try:
                files = [str(p) for p in iter_image_files(arg)]
            except Exception as exc:
                self.load_failed.emit(request_id, ", ".join(arg), str(exc))
                return
            self.files_found.emit(request_id, files)
            return
        from kdviewer.core.errors import ImageReadError

        try:
            model_image = self._model_reader(arg)
            # The models' read comes first (a half-resolution decode for large JPEG 2000, which
            # the viewer shows as a preview and scores at once); only then the full decode.
            self.model_image_ready.emit(request_id, model_image)
            image = self._reader(arg) if getattr(model_image, "reduced", False) else model_image
        except Exception as exc:
            message = str(exc) if isinstance(exc, ImageReadError) else f"{arg}: {type(exc).__name__}: {exc}"
            self.load_failed.emit(request_id, arg, message)
            return
        self.image_loaded.emit(request_id, image)
        try:  # the list's thumbnail comes from this read rather than decoding the file again
            self._thumbnails[arg] = Thumbnail(arg, make_thumbnail(image), image.metadata)
        except Exception:
            log.debug("no thumbnail for %s", arg, exc_info=True)

    def _handle_batch(self, path: str) -> None:
        done = self._thumbnails.pop(path, None)
        if done is not None:
            self.thumbnail_ready.emit(done)
            return
        try:
            image = self._reader(path)
            thumb = make_thumbnail(image)
        except Exception as exc:
            self.thumbnail_ready.emit(Thumbnail(path, None, None, str(exc)))
            return
        self.thumbnail_ready.emit(Thumbnail(path, thumb, image.metadata))


def make_thumbnail(image, size: int = THUMBNAIL_SIZE) -> QImage:
    """A small greyscale preview of ``image`` in its default display window."""
    from PIL import Image

    from kdviewer.core.display import to_display_uint8

    grey = np.ascontiguousarray(to_display_uint8(image))
    pil = Image.fromarray(grey)
    pil.thumbnail((size, size), Image.Resampling.BILINEAR)
    arr = np.ascontiguousarray(np.asarray(pil, dtype=np.uint8))
    h, w = arr.shape
    return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
