"""The viewer's state without Qt: what is open, what is selected, which result belongs to which request.

Widgets render a :class:`ViewerModel` and send it intents (select a study, a finding, a heat-map
method); workers hand it results. The model decides what work is needed and asks for it through
events (``load_requested``, ``prediction_requested``, ``heatmap_requested``, ``batch_changed``),
which the Qt side forwards to its worker threads; it drops results that belong to an image no longer
on screen. Every method is meant to be called from one thread (the GUI thread); events are plain
callbacks run synchronously, in the order they were connected (napari's ``EventedModel`` is the
model for this, without its dependencies).

Work is never repeated: each image is scored once per model (background scoring of the study list
included: a list entry the student already scored is shown from that result), all five findings'
heat maps come from that one inference (switching finding costs an upsampling, done by a worker),
a file that could not be read is remembered and not read again, and full-size heat maps are kept
in a small cache for the image on screen only.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdviewer.core import audit, scope
from kdviewer.core.explain import (
    CAM_METHODS,
    CLASS_AGNOSTIC_METHODS,
    DEFAULT_CAM_METHOD,
    check_method,
    upsample,
)
from kdviewer.core.findings import FINDING_KEYS, finding
from kdviewer.core.triage import TriageView, positive_counts, worklist

log = logging.getLogger(__name__)

ROLES = ("student", "teacher")
HEATMAP_CACHE_SIZE = 6  # full-size maps kept for the image on screen (14 MB each at 1955×1841)


class Event:
    """One kind of event: callbacks connected to it run, in order, on :meth:`emit`."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback(*args)`` on every emit; returns it (usable as a decorator)."""
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback``; a callback that is not connected is ignored."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every connected callback with ``args``."""
        for callback in list(self._callbacks):
            callback(*args)


class EventGroup:
    """A namespace of :class:`Event` s, one attribute per name."""

    def __init__(self, names: Sequence[str]):
        self._names = tuple(names)
        for name in self._names:
            setattr(self, name, Event(name))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names


@dataclass(frozen=True)
class PredictRequest:
    """What the model asks an engine for: scores and all five findings' heat maps for one image."""

    request_id: int
    image: Any  # LoadedImage (the model path's read)
    heatmaps: bool | tuple[str, ...]
    cam_method: str


@dataclass(frozen=True)
class HeatmapJob:
    """Upsampling of one finding's map to the image's full geometry, for a worker thread.

    ``source`` is a prediction's heat maps: an :class:`kdviewer.core.engine.Heatmaps` (upsampled
    here from its low-resolution map, so the prediction does not keep the full-size copy) or any
    mapping of finding key to a full-size array.
    """

    generation: int  # which image on screen it is for; results for an earlier one are dropped
    key: tuple[str, str, str]  # (role, method, finding)
    source: Any

    def compute(self) -> np.ndarray:
        """The full-size map in [0, 1], read-only (runs on a worker thread)."""
        finding_key = self.key[2]
        low_resolution = getattr(self.source, "low_resolution", None)
        if low_resolution is not None:
            out = upsample(low_resolution(finding_key), self.source.shape)
        else:
            out = np.array(self.source[finding_key], dtype=np.float32)
        out.setflags(write=False)
        return out


@dataclass
class _LoadJob:
    request_id: int
    path: str
    studies: list[str] | None  # a list to install once the file is read (opened files)
    from_list: bool  # chosen in the study list: a failure is shown in place of the image
    advance: bool = False  # opening a folder: on failure, try the next entry
    model_image: Any = None
    previewed: bool = False


@dataclass
class _Screen:
    """What belongs to the image on screen; replaced as a whole when another image is shown."""

    generation: int = 0
    path: str | None = None
    image: Any = None  # LoadedImage for display (None: nothing, or the file could not be read)
    model_image: Any = None  # what the models score
    error: str | None = None  # why ``path`` is not shown
    issued: dict[int, tuple[str, str]] = field(default_factory=dict)  # request id -> (role, method)
    outstanding: dict[str, tuple[int, str]] = field(default_factory=dict)  # role -> latest (id, method)
    results: dict[str, Any] = field(default_factory=dict)  # role -> Prediction (scores)
    sources: dict[tuple[str, str], Any] = field(default_factory=dict)  # (role, method) -> heat maps
    failed: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, method) -> message
    heatmaps: OrderedDict = field(default_factory=OrderedDict)  # (role, method, finding) -> array
    upsampling: tuple[str, str, str] | None = None  # the last key asked of a worker (it serves the latest)
    shown_key: tuple[str, str, str] | None = None  # the overlay on screen (None: no overlay)


EVENTS = (
    # work for the Qt side to forward to its workers
    "load_requested",  # (request_id, path): read one image
    "expand_requested",  # (request_id, paths): list the image files in files and folders
    "batch_changed",  # (paths, fresh): background scoring's to-do list, in order, replacing the last
    #                    one; ``fresh`` when it is a new study list (what was done before is forgotten)
    "engine_wanted",  # (role): start that model's worker if it is not running
    "prediction_requested",  # (role, PredictRequest)
    "heatmap_requested",  # (HeatmapJob)
    # state for the widgets
    "studies_changed",  # (paths, current)
    "image_changed",  # (path, image): image None when ``path`` could not be read (see ``error``)
    "image_refined",  # (path, image): the full-resolution decode replaced the preview
    "load_failed",  # (path, message): a file could not be read (or nothing was found)
    "study_failed",  # (path, message): a study list entry is unreadable
    "study_scored",  # (path, prediction): a study list entry's student scores
    "list_scored",  # (): every study list entry is scored or unreadable
    "prediction_changed",  # (role, prediction) for the image on screen
    "prediction_failed",  # (role, message)
    "heatmap_changed",  # (key, array or None): the overlay to show
    "busy_changed",  # (text): a slow heat map is being computed ("" when none)
    "selection_changed",  # (): finding, method, overlay model or teacher switch changed
    "engines_changed",  # (role): a model was started, loaded, or failed
    "view_ready",  # (): the full image, every active model's scores and the chosen heat map are shown
    "worklist_changed",  # (paths, counts): the study list in triage order and filtered, positives per finding
    "read_changed",  # (path, read): a study was shown (read) or marked unread
    "compare_changed",  # (path or None): the study shown beside the current one for comparison
    "scope_changed",  # (path, verdict or None, hidden): the scope check's verdict for the image on screen;
    #                   ``hidden`` when its scores and heat maps are kept off screen (no "show anyway" yet)
)


class ViewerModel:
    """The viewer's state and the rules for which work to ask for; see the module docstring."""

    def __init__(
        self,
        *,
        finding_key: str = FINDING_KEYS[0],
        cam_method: str = DEFAULT_CAM_METHOD,
        teacher_enabled: bool = False,
        heatmap_cache_size: int = HEATMAP_CACHE_SIZE,
        scope_gate: bool = True,
    ):
        self.events = EventGroup(EVENTS)
        self._ids = itertools.count(1)
        self._generations = itertools.count(1)
        self._cache_size = max(1, int(heatmap_cache_size))
        self.studies: list[str] = []
        self.failures: dict[str, str] = {}  # path -> why it cannot be read (remembered, not retried)
        self.list_scores: dict[str, Any] = {}  # path -> the student's Prediction
        self._list_scored_emitted = False
        self._load: _LoadJob | None = None
        self._expand_id: int | None = None
        self._screen = _Screen()
        self.engines: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}  # role -> why its engine could not be loaded
        self.wanted: set[str] = set()  # roles whose worker was asked for
        self.finding = finding(finding_key).key
        self.cam_method = cam_method if cam_method in CAM_METHODS else DEFAULT_CAM_METHOD
        self._overlay_role = "student"
        self._teacher_on = bool(teacher_enabled)
        self._busy = ""
        self._ready_key: tuple | None = None
        self.triage = TriageView()
        self.read: set[str] = set()  # studies shown on screen (or marked read)
        self.teacher_scores: dict[str, Any] = {}  # path -> the teacher's Prediction, where it ran
        self.study_info: dict[str, tuple[str | None, str | None]] = {}  # path -> (patient ID, study date)
        self.compare_path: str | None = None
        self.scope: dict[str, scope.ScopeVerdict] = {}  # path -> the scope check's verdict
        self.scope_overrides: set[str] = set()  # out-of-scope studies the user chose to see anyway
        self.scope_gate = bool(scope_gate)  # False: out-of-scope images are flagged, never hidden

    # ------------------------------------------------------------------------------------------
    # read-only views
    @property
    def path(self) -> str | None:
        """The study on screen (or shown as unreadable)."""
        return self._screen.path

    @property
    def image(self):
        """The LoadedImage on screen (None when nothing is, or ``path`` could not be read)."""
        return self._screen.image

    @property
    def model_image(self):
        """What the models score for the image on screen (the reduced read for large JPEG 2000)."""
        return self._screen.model_image

    @property
    def error(self) -> str | None:
        """Why ``path`` is not shown, when it could not be read."""
        return self._screen.error

    @property
    def loading_path(self) -> str | None:
        """The file being read, if any."""
        return self._load.path if self._load is not None else None

    @property
    def teacher_enabled(self) -> bool:
        return self._teacher_on

    @property
    def overlay_role(self) -> str:
        """Whose heat map is shown: the student unless the teacher is chosen and active."""
        return self._overlay_role if self._overlay_role in self.active_roles() else "student"

    @property
    def heatmap_key(self) -> tuple[str, str, str]:
        """(role, method, finding) of the heat map to show."""
        return (self.overlay_role, self.cam_method, self.finding)

    @property
    def shown_heatmap_key(self) -> tuple[str, str, str] | None:
        return self._screen.shown_key

    @property
    def busy(self) -> str:
        """What slow work the overlay waits for ("" when none)."""
        return self._busy

    @property
    def method_note(self) -> str:
        """A remark about the chosen heat-map method ("" when none)."""
        if self.cam_method in CLASS_AGNOSTIC_METHODS:
            return f"{self.cam_method} gives the same map for every finding"
        return ""

    def prediction(self, role: str):
        """The prediction for ``role`` on the image on screen (None if none yet)."""
        return self._screen.results.get(role)

    def heatmap(self, key: tuple[str, str, str]) -> np.ndarray | None:
        """A full-size heat map of the image on screen, if it has been upsampled."""
        return self._screen.heatmaps.get(key)

    def active_roles(self) -> list[str]:
        """The models in use: the student, and the teacher when switched on and available."""
        roles = ["student"]
        if self._teacher_on and "teacher" not in self.unavailable:
            roles.append("teacher")
        return roles

    def usable(self, role: str) -> bool:
        engine = self.engines.get(role)
        status = getattr(engine, "status", None)
        return engine is not None and (status is None or status.usable)

    def engine_settled(self, role: str) -> bool:
        """Loaded or known to be unavailable."""
        return role in self.engines or role in self.unavailable

    def list_complete(self) -> bool:
        """Every study list entry is scored or unreadable (or the student cannot score at all)."""
        if not self.studies:
            return False
        if self.engine_settled("student") and not self.usable("student"):
            return True
        return all(p in self.list_scores or p in self.failures for p in self.studies)

    def is_view_complete(self) -> bool:
        """The full-resolution image is shown, every active usable model's scores and heat maps for
        the chosen method are in, and the chosen heat map is on screen."""
        s = self._screen
        if s.image is None or s.image.reduced:
            return False
        for role in self.active_roles():
            if not self.engine_settled(role):
                return False
            if not self.usable(role) or (role, self.cam_method) in s.failed:
                continue
            if role not in s.results or (role, self.cam_method) not in s.sources:
                return False
        key = self.heatmap_key
        source = s.sources.get(key[:2])
        return source is None or key[2] not in source or s.shown_key == key or self.scores_hidden

    @property
    def scores_hidden(self) -> bool:
        """The image on screen is out of scope and the user has not chosen "show anyway"."""
        verdict = self.scope.get(self._screen.path)
        return (
            self.scope_gate
            and verdict is not None
            and not verdict.in_scope
            and self._screen.path not in self.scope_overrides
        )

    def show_anyway(self) -> None:
        """Show the scores and heat maps of the out-of-scope image on screen; recorded in the audit log."""
        path, verdict = self._screen.path, self.scope.get(self._screen.path)
        if not self.scores_hidden:
            return
        self.scope_overrides.add(path)
        audit.record_scope_override(
            verdict.reason, ood_score=verdict.ood_score, image=self._screen.image, path=path
        )
        self.events.scope_changed.emit(path, verdict, False)
        self._update_heatmap()

    def _judge_scope(self, pred) -> None:
        """The scope verdict for the image on screen: the header's at once, the pixels' with the
        student's prediction (its pooled features; cheap, so it runs here)."""
        s = self._screen
        engine = self.engines.get("student")
        model = scope.scope_of_engine(engine) if engine is not None and pred is not None else None
        verdict = scope.check(s.model_image, getattr(pred, "features", None), model)
        if verdict.source == "none" and pred is None:
            verdict = None  # nothing known yet: wait for the pixels
        if verdict is not None:
            self.scope[s.path] = verdict
        self.events.scope_changed.emit(s.path, verdict, self.scores_hidden)

    # ------------------------------------------------------------------------------------------
    # opening files
    def open_paths(self, paths: Sequence[str], *, is_dir: Callable[[str], bool] | None = None) -> None:
        """Open files and/or folders. Folders are expanded by a worker; the study list is replaced
        once something is found. A single unreadable file leaves what is on screen as it is."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        is_dir = is_dir or (lambda p: Path(p).is_dir())
        if any(is_dir(p) for p in paths):
            self._expand_id = next(self._ids)
            self.events.expand_requested.emit(self._expand_id, paths)
            return
        for p in paths:  # asked for by name: try again even if it failed before
            self.failures.pop(p, None)
        if len(paths) == 1:
            self._request_load(paths[0], studies=paths, from_list=False)
        else:
            self._install_studies(paths, current=paths[0])
            self._request_load(paths[0], from_list=True, advance=True)

    def files_found(self, request_id: int, files: Sequence[str]) -> None:
        """A worker's answer to ``expand_requested``."""
        if request_id != self._expand_id:
            return
        self._expand_id = None
        files = [str(f) for f in files]
        if not files:
            self.events.load_failed.emit("", "No DICOM, PNG or JPEG files were found there.")
            self.events.engine_wanted.emit("student")
            return
        self._install_studies(files, current=files[0])
        self._request_load(files[0], from_list=True, advance=True)

    def add_studies(self, paths: Sequence[str]) -> None:
        """Append files that arrived meanwhile (over DICOM, say) to the study list, keeping the image
        on screen; background scoring takes them up. With nothing open, the first one is opened."""
        new = [p for p in dict.fromkeys(str(p) for p in paths) if p not in self.studies]
        if not new:
            return
        if self._screen.path is None and self._load is None and self._expand_id is None:
            self._install_studies(self.studies + new, current=new[0])
            self._request_load(new[0], from_list=True, advance=True)
            return
        self._install_studies(self.studies + new, current=self._screen.path)

    def select_study(self, path: str) -> None:
        """The user moved to ``path`` in the study list. A file known to be unreadable is shown as
        such at once, without reading it again."""
        if path == self._screen.path:
            if self._load is not None and self._load.path != path:  # back before the other read ended
                self._load = None
                self._update_batch()
            return
        if path in self.failures:
            self._load = None
            self._show_failure(path, self.failures[path])
            return
        self._request_load(path, from_list=True)

    def _request_load(
        self, path: str, *, studies: list[str] | None = None, from_list: bool, advance: bool = False
    ) -> None:
        rid = next(self._ids)
        self._load = _LoadJob(rid, path, studies, from_list, advance)
        self.events.load_requested.emit(rid, path)
        self._update_batch()

    def model_image_ready(self, request_id: int, image) -> None:
        """The read for the models came first; a reduced one (large JPEG 2000) is shown at once as a
        preview, over the full geometry, until the full decode replaces it."""
        job = self._load
        if job is None or job.request_id != request_id:
            return
        job.model_image = image
        if getattr(image, "reduced", False):
            job.previewed = True
            self._show_image(job, image)

    def image_loaded(self, request_id: int, image) -> None:
        """The full-resolution read of the file asked for last (others are dropped)."""
        job = self._load
        if job is None or job.request_id != request_id:
            log.debug("dropping stale image %s", getattr(image, "path", "?"))
            return
        self._load = None
        if job.previewed and self._screen.path == job.path:
            self._screen.image = image
            self.events.image_refined.emit(job.path, image)
            self._check_ready()
            return
        self._show_image(job, image)

    def load_failed(self, request_id: int, path: str, message: str) -> None:
        """A read (or a folder listing) failed. Remembered for the study list; a file chosen in the
        list is shown as unreadable in place of an image, one opened by name leaves the screen as
        it was."""
        if request_id == self._expand_id:
            self._expand_id = None
            self.events.load_failed.emit(path, message)
            self.events.engine_wanted.emit("student")
            return
        job = self._load
        if job is None or job.request_id != request_id:
            return
        self._load = None
        self.failures[path] = message
        if path in self.studies:
            self.events.study_failed.emit(path, message)
            later = self.studies[self.studies.index(path) + 1 :]
            following = next((p for p in later if p not in self.failures), None)
            if job.advance and following is not None:  # a folder opens on its first readable image
                self._request_load(following, from_list=True, advance=True)
                return
        if job.from_list:
            self._show_failure(path, message)
        else:
            self.events.load_failed.emit(path, message)
        self.events.engine_wanted.emit("student")
        self._update_batch()
        self._check_list_scored()

    def _install_studies(self, paths: list[str], current: str | None) -> None:
        self.studies = list(paths)
        kept = set(self.studies)
        self.list_scores = {p: v for p, v in self.list_scores.items() if p in kept}
        self.teacher_scores = {p: v for p, v in self.teacher_scores.items() if p in kept}
        self._list_scored_emitted = False
        self.events.studies_changed.emit(list(self.studies), current)
        for p in self.studies:
            if p in self.failures:
                self.events.study_failed.emit(p, self.failures[p])
            elif p in self.list_scores:
                self.events.study_scored.emit(p, self.list_scores[p])
        self._update_batch(fresh=True)
        self._emit_worklist()
        self._check_list_scored()

    def _new_screen(self, path: str) -> _Screen:
        self._screen = _Screen(generation=next(self._generations), path=path)
        self._ready_key = None
        return self._screen

    def _show_image(self, job: _LoadJob, image) -> None:
        if job.studies is not None:
            self._install_studies(job.studies, current=job.path)
            job.studies = None
        s = self._new_screen(job.path)
        s.image = image
        s.model_image = job.model_image if job.model_image is not None else image
        self.failures.pop(job.path, None)
        self.note_metadata(job.path, getattr(image, "metadata", None))
        self.events.image_changed.emit(job.path, image)
        self._judge_scope(None)
        self.set_read(job.path, True)
        self.events.heatmap_changed.emit(None, None)
        self.events.engine_wanted.emit("student")
        self._update_batch()
        self._request_predictions()
        self._update_heatmap()

    def _show_failure(self, path: str, message: str) -> None:
        s = self._new_screen(path)
        s.error = message
        self.events.image_changed.emit(path, None)
        self.events.heatmap_changed.emit(None, None)
        self.events.load_failed.emit(path, message)
        self._set_busy("")

    # ------------------------------------------------------------------------------------------
    # engines and predictions
    def engine_started(self, role: str) -> None:
        """The Qt side started ``role``'s worker (its engine is loading)."""
        self.wanted.add(role)
        self.events.engines_changed.emit(role)

    def engine_loaded(self, role: str, engine) -> None:
        """``role``'s engine is ready (it may still have failed its self-test: see ``usable``)."""
        self.engines[role] = engine
        self.unavailable.pop(role, None)
        self.events.engines_changed.emit(role)
        if role == "student":
            if not self.usable(role) or self._screen.image is None:
                self._maybe_start_teacher()
            self._update_batch()
            self._check_list_scored()
        self._request_predictions()
        self._update_heatmap()
        self._check_ready()

    def engine_failed(self, role: str, reason: str) -> None:
        """``role``'s engine could not be loaded; the teacher is then switched off for good."""
        self.unavailable[role] = reason
        if role == "teacher":
            self._teacher_on = False
            self.events.selection_changed.emit()
        else:
            self._maybe_start_teacher()
            self._check_list_scored()
        self.events.engines_changed.emit(role)
        self._update_heatmap()
        self._check_ready()

    def _maybe_start_teacher(self) -> None:
        if self._teacher_on and "teacher" not in self.unavailable:
            self.events.engine_wanted.emit("teacher")

    def _adopt_list_score(self, role: str) -> bool:
        """``role`` already scored this file (the student in the background or on an earlier visit,
        the teacher on an earlier visit): use that result, its heat maps included, instead of a
        second inference."""
        s = self._screen
        pred = (self.list_scores if role == "student" else self.teacher_scores).get(s.path)
        if pred is None or pred.cam_method != self.cam_method or not pred.heatmaps:
            return False
        s.results[role] = pred
        s.sources[(role, self.cam_method)] = pred.heatmaps
        if role == "student":
            self._judge_scope(pred)
        self.events.prediction_changed.emit(role, pred)
        if role == "student":
            self._maybe_start_teacher()
        return True

    def _request_predictions(self) -> None:
        s = self._screen
        if s.model_image is None:
            return
        method = self.cam_method
        for role in self.active_roles():
            if not self.usable(role) or (role, method) in s.failed:
                continue
            if role in s.results and (role, method) in s.sources:
                continue
            if self._adopt_list_score(role):
                continue
            pending = s.outstanding.get(role)
            if pending is not None and pending[1] == method:
                continue  # asked already; a worker serves the latest request it was given
            rid = next(self._ids)
            s.issued[rid] = (role, method)
            s.outstanding[role] = (rid, method)
            self.events.prediction_requested.emit(role, PredictRequest(rid, s.model_image, True, method))
        self._update_busy()

    def prediction_ready(self, role: str, pred) -> bool:
        """A worker's result. Kept when it was asked for the image on screen (whatever else was
        asked since: its scores and heat maps are still right); otherwise dropped. Returns whether
        it was kept."""
        s = self._screen
        asked = s.issued.get(pred.request_id)
        if asked is None or asked[0] != role:
            log.debug("dropping stale %s prediction %s", role, pred.request_id)
            return False
        if s.outstanding.get(role, (None,))[0] == pred.request_id:
            del s.outstanding[role]
        method = pred.cam_method or asked[1]
        s.results[role] = pred
        if pred.heatmaps:
            s.sources[(role, method)] = pred.heatmaps
        if role == "student":
            self._judge_scope(pred)
            self.list_scores[s.path] = pred
            self.events.study_scored.emit(s.path, pred)
            self._maybe_start_teacher()
        else:
            self.teacher_scores[s.path] = pred
        self._emit_worklist()
        self.events.prediction_changed.emit(role, pred)
        self._request_predictions()
        self._update_heatmap()
        self._check_list_scored()
        self._check_ready()
        return True

    def prediction_failed(self, role: str, request_id: int, message: str) -> None:
        """A prediction for the image on screen failed; it is not asked for again for this image."""
        s = self._screen
        asked = s.issued.get(request_id)
        if asked is None:
            return
        s.failed[asked] = message
        if s.outstanding.get(role, (None,))[0] == request_id:
            del s.outstanding[role]
        self.events.prediction_failed.emit(role, message)
        if role == "student":
            self._maybe_start_teacher()
        self._update_busy()
        self._check_ready()

    def study_scored(self, path: str, pred) -> None:
        """Background scoring of a study list entry (scores and low-resolution heat maps)."""
        if path not in self.studies:
            return
        self.list_scores[path] = pred
        self.events.study_scored.emit(path, pred)
        self._emit_worklist()
        self._check_list_scored()

    def study_failed(self, path: str, message: str) -> None:
        """Background scoring could not read a study list entry: remembered, not read again."""
        if path not in self.studies:
            return
        self.failures[path] = message
        self.events.study_failed.emit(path, message)
        self._check_list_scored()

    def _update_batch(self, fresh: bool = False) -> None:
        """Background scoring: every entry neither scored, unreadable, on screen nor being read,
        starting after the current one (the neighbours are likely next)."""
        if not self.studies:
            return
        skip = {self._screen.path, self.loading_path}
        current = self.loading_path or self._screen.path
        start = self.studies.index(current) + 1 if current in self.studies else 0
        order = self.studies[start:] + self.studies[:start]
        todo = [p for p in order if p not in skip and p not in self.failures and p not in self.list_scores]
        self.events.batch_changed.emit(todo, fresh)

    def _check_list_scored(self) -> None:
        if not self._list_scored_emitted and self.list_complete():
            self._list_scored_emitted = True
            self.events.list_scored.emit()

    # ------------------------------------------------------------------------------------------
    # heat maps
    def _update_heatmap(self) -> None:
        s = self._screen
        key = self.heatmap_key
        if self.scores_hidden:  # out of scope: no overlay until "show anyway"
            if s.shown_key is not None:
                s.shown_key = None
                self.events.heatmap_changed.emit(None, None)
            self._update_busy()
            self._check_ready()
            return
        hit = s.heatmaps.get(key)
        if hit is not None:
            s.heatmaps.move_to_end(key)
            if s.shown_key != key:
                s.shown_key = key
                self.events.heatmap_changed.emit(key, hit)
        else:
            source = s.sources.get(key[:2])
            if source is not None and key[2] in source and s.upsampling != key:
                s.upsampling = key
                self.events.heatmap_requested.emit(HeatmapJob(s.generation, key, source))
            elif (
                source is None
                and (key[0] not in self.active_roles() or not self.usable(key[0]))
                and s.shown_key is not None
            ):  # nothing will come for this model: take the map away
                s.shown_key = None
                self.events.heatmap_changed.emit(None, None)
            # otherwise the map on screen stays until the new one is ready
        self._update_busy()
        self._check_ready()

    def heatmap_ready(self, job: HeatmapJob, heatmap: np.ndarray) -> None:
        """A worker finished ``job``; kept (in a small cache) when it is for the image on screen."""
        s = self._screen
        if job.generation != s.generation:
            return
        if s.upsampling == job.key:
            s.upsampling = None
        s.heatmaps[job.key] = heatmap
        while len(s.heatmaps) > self._cache_size:
            s.heatmaps.popitem(last=False)
        if job.key == self.heatmap_key:
            self._update_heatmap()

    def heatmap_failed(self, job: HeatmapJob, message: str) -> None:
        s = self._screen
        if job.generation == s.generation:
            if s.upsampling == job.key:
                s.upsampling = None
            s.failed[job.key[:2]] = message
            self.events.prediction_failed.emit(job.key[0], message)
            self._check_ready()

    def _update_busy(self) -> None:
        s = self._screen
        role, method, _ = self.heatmap_key
        waiting = (
            s.image is not None
            and self.usable(role)
            and (role, method) not in s.sources
            and (role, method) not in s.failed
            and role in s.outstanding
        )
        self._set_busy(
            f"Computing {method} heat map ({role})…" if waiting and method != DEFAULT_CAM_METHOD else ""
        )

    def _set_busy(self, text: str) -> None:
        if text != self._busy:
            self._busy = text
            self.events.busy_changed.emit(text)

    # ------------------------------------------------------------------------------------------
    # choices
    def select_finding(self, key: str) -> None:
        """Show ``key``'s scores and heat map (from the results already in: no new inference)."""
        key = finding(key).key
        if key != self.finding:
            self.finding = key
            self.events.selection_changed.emit()
            self._update_heatmap()

    def select_overlay_model(self, role: str) -> None:
        """Show ``role``'s heat map (the student's when the teacher is not active)."""
        if role not in ROLES:
            raise ValueError(f"unknown model role {role!r}")
        self._overlay_role = role
        self.events.selection_changed.emit()
        self._update_heatmap()

    def select_cam_method(self, method: str) -> None:
        """Use another heat-map method; slow ones run on the workers while the old map stays."""
        if check_method(method) != self.cam_method:
            self.cam_method = method
            self.events.selection_changed.emit()
            self._request_predictions()
            self._update_heatmap()

    def set_teacher_enabled(self, on: bool) -> None:
        """Compare with the teacher (started when first needed) or not."""
        on = bool(on) and "teacher" not in self.unavailable
        if on == self._teacher_on:
            return
        self._teacher_on = on
        self.events.selection_changed.emit()
        if on:
            if "teacher" not in self.wanted:
                self.events.engine_wanted.emit("teacher")
            elif "teacher" in self._screen.results:
                self.events.prediction_changed.emit("teacher", self._screen.results["teacher"])
            self._request_predictions()
        self.events.engines_changed.emit("teacher")
        self._update_heatmap()
        self._check_ready()

    def _check_ready(self) -> None:
        key = (self._screen.generation, self.heatmap_key, tuple(self.active_roles()))
        if self._ready_key != key and self.is_view_complete():
            self._ready_key = key
            self.events.view_ready.emit()

    # ------------------------------------------------------------------------------------------
    # triage (kdviewer.core.triage): ordering and filtering use the scores already made
    def worklist(self) -> list[str]:
        """The study list as :attr:`triage` orders and filters it."""
        # the study on screen stays listed while "unread only" hides the others already read
        return worklist(
            self.studies,
            self.triage,
            student=self.list_scores,
            teacher=self.teacher_scores,
            read=self.read - {self.path},
        )

    def positive_counts(self) -> dict[str, int]:
        """Studies of the list the student calls positive, per finding."""
        return positive_counts(self.studies, self.list_scores)

    def set_triage(self, view: TriageView) -> None:
        """Order and filter the study list another way (no model runs)."""
        if view != self.triage:
            self.triage = view
            self._emit_worklist()

    def set_read(self, path: str, read: bool) -> None:
        """Mark a study read (done when it is shown) or unread again."""
        if (path in self.read) == read:
            return
        if read:
            self.read.add(path)
        else:
            self.read.discard(path)
        self.events.read_changed.emit(path, read)
        if self.triage.unread_only:
            self._emit_worklist()

    def _emit_worklist(self) -> None:
        self.events.worklist_changed.emit(self.worklist(), self.positive_counts())

    # ------------------------------------------------------------------------------------------
    # comparison with another study of the same patient (from what the reads already gave)
    def note_metadata(self, path: str, metadata) -> None:
        """Remember a study's patient ID and date (from its thumbnail's read) to find its priors."""
        if metadata is not None:
            self.study_info[str(path)] = (
                getattr(metadata, "patient_id", None),
                getattr(metadata, "study_date", None),
            )

    def priors(self, path: str | None = None) -> list[str]:
        """Other studies in the list with the patient ID of ``path`` (default: the one on screen),
        most recent first (undated last)."""
        path = path or self.path
        patient = self.study_info.get(path, (None, None))[0] if path else None
        if not patient:
            return []
        same = [p for p in self.studies if p != path and self.study_info.get(p, (None, None))[0] == patient]
        dated = sorted(
            (p for p in same if self.study_info[p][1]), key=lambda p: self.study_info[p][1], reverse=True
        )
        return dated + [p for p in same if not self.study_info[p][1]]

    def set_compare(self, path: str | None) -> None:
        """Show ``path`` beside the current study (None: stop comparing). No model runs: its
        scores are the study list's."""
        if path != self.compare_path:
            self.compare_path = path
            self.events.compare_changed.emit(path)
