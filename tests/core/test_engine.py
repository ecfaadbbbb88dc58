"""The inference engine: immutable predictions, geometry, runtimes agree, self-test, loading."""

import json
import threading

import numpy as np
import pytest

from kdviewer.core import engine as engine_mod
from kdviewer.core.engine import (
    EngineStatus,
    EngineUnavailableError,
    InferenceEngine,
    Prediction,
    load_engine,
    reference_image,
    reference_scores,
)
from kdviewer.core.errors import ModelLoadError
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.runtime import model_threads, thread_count
from kdviewer.core.untrained import write_untrained_card
from tests.core import engine_helpers as H


@pytest.fixture(scope="module")
def student():
    return H.engine("student")


def test_contract_constants():
    assert EngineStatus("ok", "").usable and EngineStatus("untrained", "").usable
    assert not EngineStatus("selftest_failed", "").usable and not EngineStatus("error", "").usable


def test_untrained_engine_is_loudly_labelled(student):
    assert student.status.state == "untrained" and "UNTRAINED" in student.status.message
    assert student.card.trained is False and student.runtime_name == "onnxruntime"
    assert student.threads >= 1 and student.describe()["threads"] == student.threads


@pytest.mark.parametrize("name", ["student", "teacher"])
def test_engine_runs_on_its_models_intra_op_threads(name):
    """ONNX Runtime: the model's share of the budget, in the session and in describe(); eager
    PyTorch: its process-wide pool, the whole budget."""
    import torch  # the untrained engines are built with it

    eng = H.engine(name)
    opts = eng._runtime.session.get_session_options()
    assert eng.threads == opts.intra_op_num_threads == eng.describe()["threads"] == model_threads(name)
    eager = InferenceEngine(eng.model, eng.card, runtime="torch-eager", status=eng.status)
    assert eager.threads == eager.describe()["threads"] == thread_count() == torch.get_num_threads()


def test_prediction_is_complete_and_immutable(student):
    img = H.grey_image((300, 200), blob=(100, 50))
    n0 = len(student.telemetry)
    pred = student.predict(img, request_id=7, measure_energy=False)
    assert isinstance(pred, Prediction) and pred.request_id == 7 and pred.model_name == "student"
    assert pred.findings == FINDING_KEYS and tuple(pred.scores) == FINDING_KEYS
    assert all(0.0 < s < 1.0 for s in pred.scores.values())
    assert all(pred.positive[k] == (pred.scores[k] >= pred.thresholds[k]) for k in FINDING_KEYS)
    assert pred.cam_method == "gradcam" and set(pred.heatmaps) == set(FINDING_KEYS)
    for hm in pred.heatmaps.values():
        assert hm.shape == img.shape and hm.dtype == np.float32
        assert hm.min() >= 0.0 and hm.max() <= 1.0
        with pytest.raises(ValueError):
            hm[0, 0] = 1.0
    for mapping in (pred.scores, pred.thresholds, pred.positive, pred.heatmaps, pred.timings_ms):
        with pytest.raises(TypeError):
            mapping["edema"] = 1.0  # type: ignore[index]
    # heat maps are upsampled once, when first read
    assert pred.heatmaps["edema"] is pred.heatmaps["edema"]
    assert set(pred.timings_ms) == {"preprocess", "forward", "heatmap", "total"}
    assert pred.timings_ms["total"] >= pred.timings_ms["forward"] > 0
    assert pred.energy is None
    samples = student.telemetry.snapshot()
    assert len(samples) == n0 + 1 and samples[-1].model_name == "student" and samples[-1].request_id == 7


def test_heatmap_selection_and_methods(student):
    img = H.grey_image((120, 160))
    none = student.predict(img, heatmaps=False, measure_energy=False)
    assert dict(none.heatmaps) == {} and none.cam_method is None
    one = student.predict(
        img, heatmaps=["Cardiomegaly", "edema"], cam_method="eigencam", measure_energy=False
    )
    assert list(one.heatmaps) == ["cardiomegaly", "edema"] and one.cam_method == "eigencam"
    assert one.heatmaps["edema"].shape == (120, 160)
    with pytest.raises(ValueError):
        student.predict(img, cam_method="scorecam")
    with pytest.raises(KeyError):
        student.predict(img, heatmaps=["pneumothorax"])


def test_onnx_and_eager_engines_agree(student):
    eager = H.engine("student", "torch-eager")
    assert eager.runtime_name == "torch-eager"
    img = H.grey_image((256, 320), blob=(60, 200))
    a, b = student.predict(img, measure_energy=False), eager.predict(img, measure_energy=False)
    for k in FINDING_KEYS:
        assert abs(a.scores[k] - b.scores[k]) < 1e-4
        assert np.abs(a.heatmaps[k] - b.heatmaps[k]).max() < 1e-3


def test_predict_pixels_matches_predict(student):
    from kdviewer.core.preprocess import image_to_model_input

    img = H.grey_image((200, 300))
    x = image_to_model_input(img, student.card.input)
    a = student.predict(img, measure_energy=False)
    b = student.predict_pixels(x, image_shape=img.shape)
    assert dict(a.scores) == pytest.approx(dict(b.scores), abs=1e-6)
    assert b.heatmaps["edema"].shape == img.shape and b.timings_ms["preprocess"] < 1.0


def test_one_worker_thread_at_a_time_is_safe(student):
    img = H.grey_image((128, 128), blob=(40, 90))
    want = dict(student.predict(img, heatmaps=False, measure_energy=False).scores)
    got = []

    def work():
        for _ in range(3):
            got.append(dict(student.predict(img, heatmaps=False, measure_energy=False).scores))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(g == pytest.approx(want, abs=1e-6) for g in got)


class _FakeMeter:
    method, is_estimate = "fake counter", True

    def measure(self):
        from contextlib import contextmanager
        from types import SimpleNamespace

        @contextmanager
        def cm():
            rec = SimpleNamespace(method=self.method, is_estimate=True, complete=False)
            yield rec
            rec.marginal_energy_j, rec.avg_power_w, rec.complete = 0.002, 4.0, True

        return cm()


def test_energy_is_attached_and_recorded(student, monkeypatch):
    monkeypatch.setattr(student, "_meter", _FakeMeter())
    monkeypatch.setattr(student, "_meter_ready", True)
    pred = student.predict(H.grey_image((64, 64)), heatmaps=False, measure_energy=True)
    assert pred.energy.method == "fake counter" and pred.energy.complete
    s = student.telemetry.snapshot()[-1]
    assert s.energy_mj == pytest.approx(2.0) and s.power_w == 4.0
    assert s.is_estimate and s.energy_method == "fake counter"


class _SlowForward:
    """A teacher's runtime that blocks inside its forward pass until released."""

    name = "fake-slow"

    def __init__(self, inner):
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, x):
        self.entered.set()
        assert self.release.wait(60), "never released"
        return self.inner.run(x)


def test_the_student_never_waits_for_a_teacher_inference(student, monkeypatch):
    """With energy measured on both (one shared meter, as in the viewer), a student inference
    completes while a teacher inference is stuck in its forward pass."""
    from kdviewer.core.power import EstimateMeter

    teacher = InferenceEngine.untrained("teacher", "mobilenet_v2", runtime="torch-eager", seed=1)
    slow = _SlowForward(teacher._runtime)
    monkeypatch.setattr(teacher, "_runtime", slow)
    meter = EstimateMeter()
    for eng in (student, teacher):
        monkeypatch.setattr(eng, "_meter", meter)
        monkeypatch.setattr(eng, "_meter_ready", True)
    img = H.grey_image((64, 64))
    teacher_done = []
    t = threading.Thread(target=lambda: teacher_done.append(teacher.predict(img, heatmaps=False)))
    t.start()
    try:
        assert slow.entered.wait(60)
        result = []
        s = threading.Thread(target=lambda: result.append(student.predict(img, heatmaps=True)))
        s.start()
        s.join(60)
        assert result and not teacher_done, "the student waited for the teacher"
        assert result[0].energy.complete and "overlapped" in result[0].energy.method
    finally:
        slow.release.set()
        t.join(60)
    assert teacher_done and "overlapped" in teacher_done[0].energy.method


def test_reference_image_is_deterministic():
    a, b = reference_image(), reference_image()
    assert np.array_equal(a.pixels, b.pixels) and a.shape == (320, 256)
    assert a.pixels.min() >= 0 and a.pixels.max() <= 4095 and a.pixels.std() > 100


# ---------------------------------------------------------------- model cards and the self-test


@pytest.fixture()
def saved_student(tmp_path):
    model, path, card = H.save_untrained_student(tmp_path, seed=0)
    return path, card, model


def test_self_test_passes_for_a_matching_card(saved_student):
    path, card, model = saved_student
    assert card.reference["scores"] == pytest.approx(reference_scores(model, card), abs=1e-7)
    eng = InferenceEngine.from_card(path)
    assert eng.status.state == "ok" and "self-test passed" in eng.status.message
    pred = eng.predict(H.grey_image((90, 70)), measure_energy=False)
    assert pred.trained and pred.weights_sha256 == card.weights_sha256


def test_tampered_reference_disables_the_model(saved_student):
    path, card, _ = saved_student
    d = json.loads(path.read_text())
    d["reference"]["scores"]["edema"] += 0.01
    path.write_text(json.dumps(d))
    eng = InferenceEngine.from_card(path)
    assert eng.status.state == "selftest_failed" and not eng.status.usable
    assert "edema" in eng.status.message and "disabled" in eng.status.message
    with pytest.raises(EngineUnavailableError, match="self-test failed"):
        eng.predict(H.grey_image((90, 70)))


def test_unknown_reference_generator_fails_the_self_test(saved_student):
    path, _, _ = saved_student
    d = json.loads(path.read_text())
    d["reference"]["input"].update(generator="someone.else", version=9)
    path.write_text(json.dumps(d))
    assert InferenceEngine.from_card(path).status.state == "selftest_failed"


def test_card_without_reference_is_refused(saved_student):
    path, card, model = saved_student
    d = json.loads(path.read_text())
    del d["reference"]
    path.write_text(json.dumps(d))
    with pytest.raises(ModelLoadError, match="self-test needs it"):
        InferenceEngine.from_card(path)
    # an engine built in code from a card without one cannot pass the self-test either
    eng = InferenceEngine(model, card.with_updates(reference=None), runtime="torch-eager")
    assert eng.self_test().state == "selftest_failed"


def test_non_finite_scores_fail_the_self_test(saved_student):
    path, card, model = saved_student
    eng = InferenceEngine(model, card, runtime="torch-eager")
    eng._runtime.run = lambda x: (np.full(5, np.nan, np.float32), np.zeros((1280, 7, 7), np.float32))
    status = eng.self_test()
    assert status.state == "selftest_failed" and "nan" in status.message


def test_corrupt_weights_raise(saved_student):
    path, card, _ = saved_student
    w = path.parent / card.weights_file
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelLoadError, match="SHA-256"):
        InferenceEngine.from_card(path)


def test_load_engine_finds_cards_or_falls_back(saved_student, monkeypatch):
    path, _, _ = saved_student
    monkeypatch.setattr(engine_mod, "find_cards", lambda dirs=None: {"student": path})
    assert load_engine("student").status.state == "ok"
    monkeypatch.setattr(engine_mod, "find_cards", lambda dirs=None: {})
    fallback = load_engine("student", runtime="torch-eager")
    assert fallback.status.state == "untrained" and fallback.card.architecture == "mobilenet_v2"
    with pytest.raises(ModelLoadError, match="teacher"):
        load_engine("teacher", allow_untrained=False)
    # a trained student is installed but no teacher: no random teacher beside it
    monkeypatch.setattr(engine_mod, "find_cards", lambda dirs=None: {"student": path})
    with pytest.raises(ModelLoadError, match="no model card named 'teacher'"):
        load_engine("teacher")
    assert engine_mod.DEFAULT_ARCH["teacher"] == "densenet121"


def test_second_start_uses_the_cached_export_without_pytorch(saved_student):
    path, card, _ = saved_student
    first = InferenceEngine.from_card(path)  # exports (or finds) the ONNX graph
    lean = InferenceEngine.from_card(path)
    assert lean._model is None and lean.status.state == "ok" and lean.runtime_name == "onnxruntime"
    img = H.grey_image((150, 90), blob=(40, 40))
    a, b = first.predict(img, measure_energy=False), lean.predict(img, measure_energy=False)
    assert dict(a.scores) == pytest.approx(dict(b.scores), abs=1e-6)
    assert all(np.array_equal(a.heatmaps[k], b.heatmaps[k]) for k in FINDING_KEYS)
    lean.predict(img, heatmaps=["edema"], cam_method="layercam", measure_energy=False)  # loads torch lazily
    assert lean._model is not None


def test_lean_start_never_imports_torch(saved_student):
    import subprocess
    import sys

    path, _, _ = saved_student
    InferenceEngine.from_card(path)  # make sure the export is cached
    code = (
        "import sys\n"
        "from kdviewer.core.engine import InferenceEngine, reference_image\n"
        f"eng = InferenceEngine.from_card({str(path)!r})\n"
        "p = eng.predict(reference_image((200, 100)), measure_energy=False)\n"
        "assert eng.status.state == 'ok' and len(p.heatmaps) == 5, eng.status\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ})


def test_bench_result_has_the_documented_keys(monkeypatch, capsys):
    import kdviewer.core.modelcard as mc
    from kdviewer import bench

    for where in (mc, engine_mod):  # no installed card: the bench's own look-up and load_engine's
        monkeypatch.setattr(where, "find_cards", lambda dirs=None: {})
    H.engine("teacher")  # the teacher's export is cached once per session
    r = bench.run_bench(
        runs=1,
        warmup=0,
        image_shape=(64, 48),
        eager=True,
        example=False,
        subprocess_rss=False,
        energy=False,
        student_sizes=((32, 40),),
    )
    for model in ("student", "teacher"):
        for stage in ("preprocess", "forward", "heatmap", "total"):
            for d in (r[model], r["eager"][model]):
                assert 0 < d[stage]["median_ms"] <= d[stage]["p90_ms"], (model, stage, d[stage])
        for d in (r[model], r["eager"][model]):  # each run's total holds its forward pass
            assert d["total"]["median_ms"] >= d["forward"]["median_ms"]
        assert r["eager"][model]["runtime"] == "torch-eager"
    assert r["student"]["runtime"] == "onnxruntime"
    assert {"machine", "versions", "rss", "ratio", "targets"} <= set(r) and "32x40" in r["student_sizes"]
    assert r["machine"]["threads"]["budget"] >= 1 and "onnxruntime" in r["versions"]
    intra_op = {m: r[m]["threads"] for m in ("student", "teacher")}
    assert r["machine"]["threads"]["intra_op"] == intra_op == r["together"]["threads"]
    assert intra_op == {m: model_threads(m) for m in intra_op}  # as the viewer's engines
    assert all(r[m]["cpu"]["median_ms"] > 0 for m in intra_op) and r["ratio"]["teacher_over_student_cpu"] > 0
    fl = r["floor"]
    assert {p["threads"] for p in fl["probes"]} == set(intra_op.values())
    assert all(p["fp32_gmacs_per_s"] > 0 for p in fl["probes"])
    assert 0.1 < fl["student"]["gmacs"] < fl["teacher"]["gmacs"]
    assert fl["student"]["share_of_peak"] > 0 and fl["student"]["precision"] in ("float32", "int8")
    tg = r["together"]
    assert tg["student_alone_ms"] > 0 and tg["student_beside_teacher_ms"] > 0
    assert tg["student_runs"] >= r["runs"] and tg["teacher_runs_meanwhile"] >= 0
    budget = str(r["machine"]["threads"]["budget"])
    study = r["thread_study"]  # each model's forward by thread count, interleaved
    assert set(study["student"]) == {"runs", "threads_used", "pause_0ms", "pause_50ms"}
    assert set(study["teacher"]) == {"runs", "threads_used", "pause_0ms"}
    for d in (study["student"]["pause_0ms"], study["student"]["pause_50ms"], study["teacher"]["pause_0ms"]):
        assert {"1", budget} <= set(d) and all(v["median_ms"] > 0 and v["cpu_ms"] >= 0 for v in d.values())
    text = bench.format_text(r)
    assert "student" in text and "teacher/student" in text and "forward alone by intra-op threads" in text
    assert "matmul probe" in text and "beside a busy teacher" in text and "% of it" in text
    assert "CPU time" in text and "CPU ms/inference" in text and "target <= +20 %" in text
    tiny = dict(
        warmup=0, image_shape=(64, 48), eager=False, example=False, subprocess_rss=False, energy=False
    )
    assert bench.bench_command(1, True, **tiny) == 0
    printed = json.loads(capsys.readouterr().out)  # what bench_command ran and printed, not r
    assert printed["runs"] == 1 and list(printed["input"]["shape"][:2]) == [64, 48]


def test_written_untrained_card_loads_verified_and_labelled(tmp_path):
    path = write_untrained_card(tmp_path, "student")
    eng = InferenceEngine.from_card(path)
    assert eng.card.name == "student" and not eng.card.trained
    assert eng.status.usable and eng.status.state == "untrained"
