"""The viewer's state without Qt: stale results dropped, no work repeated, failures remembered."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.viewer_model import EVENTS, HeatmapJob, ViewerModel

SHAPE = (6, 4)


def image(path: str, reduced: bool = False):
    return SimpleNamespace(path=path, reduced=reduced, geometry=SHAPE)


@dataclass
class Pred:
    request_id: int | None
    cam_method: str | None = "gradcam"
    scores: dict = field(default_factory=lambda: {k: 0.5 for k in FINDING_KEYS})
    heatmaps: dict = field(default_factory=dict)


def maps(value: float = 0.0) -> dict:
    return {k: np.full(SHAPE, value + i, dtype=np.float32) for i, k in enumerate(FINDING_KEYS)}


class Recorder:
    """Every event the model emits, in order, as (name, args)."""

    def __init__(self, model: ViewerModel):
        self.seen: list[tuple[str, tuple]] = []
        for name in EVENTS:
            getattr(model.events, name).connect(lambda *args, n=name: self.seen.append((n, args)))

    def of(self, name: str) -> list[tuple]:
        return [args for n, args in self.seen if n == name]

    def clear(self) -> None:
        self.seen.clear()


ENGINE = SimpleNamespace(status=SimpleNamespace(usable=True, state="ok", message=""))


def run_heatmaps(model: ViewerModel, rec: Recorder) -> None:
    """Do what the heat-map worker does for every job asked so far."""
    for (job,) in rec.of("heatmap_requested"):
        model.heatmap_ready(job, job.compute())


def showing(paths=("a.png", "b.png", "c.png"), teacher=False):
    """A model with a study list, the first image on screen and the student loaded."""
    model = ViewerModel(teacher_enabled=teacher)
    rec = Recorder(model)
    model.open_paths(list(paths), is_dir=lambda p: False)
    ((rid, path),) = rec.of("load_requested")
    model.model_image_ready(rid, image(path))
    model.image_loaded(rid, image(path))
    model.engine_loaded("student", ENGINE)
    return model, rec


def answer(model, rec, role="student", value=0.0):
    """Answer the latest prediction request for ``role``; returns the prediction."""
    rid = [req.request_id for r, req in rec.of("prediction_requested") if r == role][-1]
    pred = Pred(rid, heatmaps=maps(value))
    assert model.prediction_ready(role, pred)
    return pred


def test_result_for_an_old_request_is_dropped_and_for_the_current_one_kept():
    model, rec = showing()
    ((role, first),) = rec.of("prediction_requested")
    assert role == "student" and first.heatmaps is True  # all five findings from one inference
    # the user moves on before the result comes back
    model.select_study("b.png")
    ((rid_b, _),) = [a for a in rec.of("load_requested") if a[1] == "b.png"]
    model.image_loaded(rid_b, image("b.png"))
    assert model.path == "b.png" and model.prediction("student") is None  # switching study clears
    late = Pred(first.request_id, heatmaps=maps())
    assert not model.prediction_ready("student", late)
    assert model.prediction("student") is None
    current = answer(model, rec)
    assert model.prediction("student") is current


def test_late_image_and_late_heat_map_of_a_previous_study_are_dropped():
    model, rec = showing()
    pred = answer(model, rec)
    ((job,),) = rec.of("heatmap_requested")
    model.select_study("b.png")
    model.select_study("c.png")  # b's read is replaced before it ends
    loads = dict((p, r) for r, p in rec.of("load_requested"))
    model.image_loaded(loads["b.png"], image("b.png"))
    assert model.path == "a.png"  # the stale read is not shown
    model.image_loaded(loads["c.png"], image("c.png"))
    assert model.path == "c.png"
    rec.clear()
    model.heatmap_ready(job, job.compute())  # a's map arrives after c is on screen
    assert rec.of("heatmap_changed") == [] and model.heatmap(job.key) is None
    assert pred.request_id not in [r.request_id for _, r in rec.of("prediction_requested")]


def test_switching_finding_reuses_the_one_inference_and_upsamples_off_thread():
    model, rec = showing()
    pred = answer(model, rec, value=10.0)
    run_heatmaps(model, rec)
    assert model.is_view_complete()
    key, shown = rec.of("heatmap_changed")[-1]
    assert key == ("student", "gradcam", FINDING_KEYS[0])
    np.testing.assert_array_equal(shown, pred.heatmaps[FINDING_KEYS[0]])
    rec.clear()
    for k in FINDING_KEYS[1:]:
        model.select_finding(k)
        run_heatmaps(model, rec)
        np.testing.assert_array_equal(rec.of("heatmap_changed")[-1][1], pred.heatmaps[k])
    assert rec.of("prediction_requested") == []  # not one more inference
    assert len(rec.of("view_ready")) == len(FINDING_KEYS) - 1


def test_unreadable_study_is_shown_inline_and_remembered():
    model, rec = showing()
    answer(model, rec)
    model.select_study("b.png")
    ((rid, _),) = [a for a in rec.of("load_requested") if a[1] == "b.png"]
    model.load_failed(rid, "b.png", "b.png: truncated PNG")
    assert model.path == "b.png" and model.image is None and model.error == "b.png: truncated PNG"
    assert ("b.png", "b.png: truncated PNG") in rec.of("load_failed")
    assert ("b.png", "b.png: truncated PNG") in rec.of("study_failed")
    # the next study stays reachable, and coming back does not read the bad file again
    model.select_study("c.png")
    ((rid_c, _),) = [a for a in rec.of("load_requested") if a[1] == "c.png"]
    model.image_loaded(rid_c, image("c.png"))
    rec.clear()
    model.select_study("b.png")
    assert rec.of("load_requested") == [] and model.path == "b.png" and model.error
    assert rec.of("load_failed") == [("b.png", "b.png: truncated PNG")]


def test_a_single_file_that_fails_leaves_the_screen_as_it_was():
    model, rec = showing()
    model.open_paths(["bad.dcm"], is_dir=lambda p: False)
    ((rid, _),) = [a for a in rec.of("load_requested") if a[1] == "bad.dcm"]
    model.load_failed(rid, "bad.dcm", "bad.dcm: not a DICOM file")
    assert model.path == "a.png" and model.image is not None
    assert model.studies == ["a.png", "b.png", "c.png"]
    assert ("bad.dcm", "bad.dcm: not a DICOM file") in rec.of("load_failed")


def test_folder_without_images_says_so_and_folder_of_bad_files_completes():
    model = ViewerModel()
    rec = Recorder(model)
    model.open_paths(["/empty"], is_dir=lambda p: True)
    ((rid, paths),) = rec.of("expand_requested")
    model.files_found(rid, [])
    assert "No DICOM, PNG or JPEG" in rec.of("load_failed")[0][1]
    model.open_paths(["/bad"], is_dir=lambda p: True)
    rid = rec.of("expand_requested")[-1][0]
    model.files_found(rid, ["/bad/1.png", "/bad/2.png", "/bad/3.png"])
    ((load_id, _),) = [a for a in rec.of("load_requested") if a[1] == "/bad/1.png"]
    model.study_failed("/bad/2.png", "2.png: truncated")  # background scoring found this one
    model.load_failed(load_id, "/bad/1.png", "1.png: truncated")
    # opening a folder moves on to its first entry not known to be unreadable
    assert model.path is None and model.loading_path == "/bad/3.png"
    ((load_id, _),) = [a for a in rec.of("load_requested") if a[1] == "/bad/3.png"]
    model.load_failed(load_id, "/bad/3.png", "3.png: truncated")
    assert model.list_complete() and len(rec.of("list_scored")) == 1
    assert model.path == "/bad/3.png" and model.image is None and model.loading_path is None
    assert model.error == "3.png: truncated"


def test_background_scoring_skips_what_is_known_and_its_result_is_reused():
    model, rec = showing(paths=("a.png", "b.png", "c.png", "d.png"))
    assert rec.of("batch_changed")[-1] == (["b.png", "c.png", "d.png"], False)  # not the image on screen
    answer(model, rec)
    model.study_failed("c.png", "c.png: truncated")
    batch_pred = Pred(None, heatmaps=maps(5.0))
    model.study_scored("b.png", batch_pred)
    rec.clear()
    model.select_study("b.png")
    assert rec.of("batch_changed")[-1] == (["d.png"], False)  # after b, without c (unreadable) or a (scored)
    ((rid, _),) = rec.of("load_requested")
    model.image_loaded(rid, image("b.png"))
    assert rec.of("prediction_requested") == []  # scored in the background already: no second inference
    assert model.prediction("student") is batch_pred
    run_heatmaps(model, rec)
    np.testing.assert_array_equal(rec.of("heatmap_changed")[-1][1], batch_pred.heatmaps[FINDING_KEYS[0]])
    assert model.is_view_complete()


def test_teacher_starts_after_the_students_first_result_and_is_scored_once():
    model, rec = showing(teacher=True)
    assert ("teacher",) not in rec.of("engine_wanted")
    answer(model, rec)
    assert ("teacher",) in rec.of("engine_wanted")
    model.engine_loaded("teacher", ENGINE)
    teacher_pred = answer(model, rec, role="teacher")
    model.select_overlay_model("teacher")
    run_heatmaps(model, rec)
    assert model.heatmap_key[0] == "teacher" and model.is_view_complete()
    n = len(rec.of("prediction_requested"))
    model.set_teacher_enabled(False)
    assert model.heatmap_key[0] == "student"
    model.set_teacher_enabled(True)  # back on: the result for this image is still there
    assert len(rec.of("prediction_requested")) == n and model.prediction("teacher") is teacher_pred


def test_slow_method_keeps_the_previous_map_and_shows_busy():
    model, rec = showing()
    answer(model, rec)
    run_heatmaps(model, rec)
    rec.clear()
    model.select_cam_method("eigencam")
    ((role, req),) = rec.of("prediction_requested")
    assert req.cam_method == "eigencam"
    assert "eigencam" in model.busy and rec.of("busy_changed")[-1][0] == model.busy
    assert rec.of("heatmap_changed") == []  # the gradcam map stays on screen meanwhile
    assert "same map for every finding" in model.method_note
    model.select_cam_method("eigencam")  # asked already: not again
    assert len(rec.of("prediction_requested")) == 1
    pred = Pred(req.request_id, cam_method="eigencam", heatmaps=maps(3.0))
    assert model.prediction_ready("student", pred)
    assert model.busy == ""
    run_heatmaps(model, rec)
    key, shown = rec.of("heatmap_changed")[-1]
    assert key == ("student", "eigencam", FINDING_KEYS[0])
    # back to gradcam: its maps are still there, no inference
    model.select_cam_method("gradcam")
    assert len(rec.of("prediction_requested")) == 1


def test_failed_prediction_is_not_asked_again_and_the_view_completes():
    model, rec = showing()
    ((_, req),) = rec.of("prediction_requested")
    model.prediction_failed("student", req.request_id, "RuntimeError: boom")
    assert rec.of("prediction_failed") == [("student", "RuntimeError: boom")]
    model.select_finding(FINDING_KEYS[2])
    assert len(rec.of("prediction_requested")) == 1
    assert model.is_view_complete()


def test_heatmap_job_upsamples_like_the_engines_heat_maps():
    from kdviewer.core.engine import Heatmaps

    rng = np.random.default_rng(0)
    low = rng.random((len(FINDING_KEYS), 7, 7), dtype=np.float32)
    source = Heatmaps(FINDING_KEYS, low, (61, 45))
    job = HeatmapJob(1, ("student", "gradcam", FINDING_KEYS[3]), source)
    out = job.compute()
    assert out.shape == (61, 45) and not out.flags.writeable
    np.testing.assert_array_equal(out, source[FINDING_KEYS[3]])


def test_unknown_choices_are_errors():
    model = ViewerModel()
    with pytest.raises(ValueError, match="heat map method"):
        model.select_cam_method("nope")
    with pytest.raises(ValueError, match="role"):
        model.select_overlay_model("nurse")
    with pytest.raises(KeyError):
        model.select_finding("fracture")
