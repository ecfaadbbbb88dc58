"""The int8 student: hash-pinned beside the float32 graph, its own self-test, chosen by the card or
``KDVIEWER_PRECISION``, and named in every prediction and predict record; the val comparison that
decides the default (training/quantize.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kdviewer.core.engine import InferenceEngine, reference_image
from kdviewer.core.errors import ModelLoadError
from kdviewer.core.modelcard import ModelCard, find_cards, read_card
from kdviewer.core.records import prediction_record
from kdviewer.core.resources import resources_dir

STUDENT = find_cards([resources_dir() / "models"])["student"]


def _copy(tmp_path, **changes):
    card = read_card(STUDENT)
    for name in (card.weights_file, card.onnx_file, card.int8["file"]):
        shutil.copyfile(STUDENT.parent / name, tmp_path / name)
    path = tmp_path / "student.json"
    path.write_text(card.with_updates(scope=None, **changes).to_json())
    return path


def test_shipped_student_has_an_int8_graph_judged_on_val():
    card = read_card(STUDENT)
    q = card.int8
    assert q is not None and q["file"] != card.onnx_file and q["calibration"]["split"] == "train"
    val = q["val"]
    assert val["images"] == card.metrics["images"]
    assert val["mean_auc_float32"] == pytest.approx(card.metrics["mean_auc"], abs=1e-3)
    assert q["default"] == (abs(val["mean_auc_difference"]) < 0.005)
    lo, hi = val["difference_ci"]
    assert lo <= val["mean_auc_difference"] <= hi


@pytest.mark.parametrize("env, want", [(None, None), ("float32", "float32"), ("int8", "int8")])
def test_precision_from_the_card_or_the_environment(monkeypatch, env, want):
    if env is None:
        monkeypatch.delenv("KDVIEWER_PRECISION", raising=False)
        want = "int8" if read_card(STUDENT).int8["default"] else "float32"
    else:
        monkeypatch.setenv("KDVIEWER_PRECISION", env)
    engine = InferenceEngine.from_card(STUDENT)
    assert engine.precision == want and engine.status.usable, engine.status.message
    assert "self-test passed" in engine.status.message
    pred = engine.predict(reference_image((512, 480)), measure_energy=False)
    assert pred.precision == want and engine.describe()["precision"] == want
    assert prediction_record("x.png", pred)["precision"] == want


def test_int8_and_float32_scores_agree_roughly(monkeypatch):
    """Both graphs score the same image; int8 within the card's largest val change of float32."""
    card = read_card(STUDENT)
    img = reference_image((700, 600))
    scores = {}
    for precision in ("float32", "int8"):
        monkeypatch.setenv("KDVIEWER_PRECISION", precision)
        scores[precision] = InferenceEngine.from_card(STUDENT).predict(img, measure_energy=False).scores
    diff = max(abs(scores["int8"][k] - scores["float32"][k]) for k in card.findings)
    assert 0 < diff <= card.int8["val"]["largest_score_change"] + 0.05


def test_altered_int8_graph_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIEWER_PRECISION", "int8")
    path = _copy(tmp_path)
    card = read_card(path)
    blob = bytearray((tmp_path / card.int8["file"]).read_bytes())
    blob[len(blob) // 2] ^= 1
    (tmp_path / card.int8["file"]).write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError, match="SHA-256"):
        InferenceEngine.from_card(path)


def test_int8_self_test_uses_its_own_reference_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIEWER_PRECISION", "int8")
    card = read_card(STUDENT)
    wrong = {k: min(1.0, v + 0.01) for k, v in card.int8["reference_scores"].items()}
    engine = InferenceEngine.from_card(_copy(tmp_path, int8={**card.int8, "reference_scores": wrong}))
    assert engine.status.state == "selftest_failed"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"file": "../x.onnx"}, "plain file name"),
        ({"sha256": "abc"}, "sha256"),
        ({"reference_scores": {"edema": 0.5}}, "must give all"),
        ({"default": "yes"}, "default"),
    ],
)
def test_card_int8_section_is_validated(change, match):
    d = json.loads(read_card(STUDENT).to_json())
    d["int8"] = {**d["int8"], **change}
    with pytest.raises(ValueError, match=match):
        ModelCard.from_dict(d)


def test_compare_precisions_reports_the_paired_difference():
    pytest.importorskip("torch")
    from training.quantize import compare_precisions

    rng = np.random.default_rng(0)
    labels = (rng.random((200, 5)) < 0.3).astype(float)
    p32 = np.clip(labels * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
    p8 = np.clip(p32 + rng.normal(0, 0.05, p32.shape), 0, 1)
    patients = np.arange(200) // 2
    keys = ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion")
    out = compare_precisions(labels, patients, p32, p8, keys, resamples=200)
    assert out["mean_auc_difference"] == pytest.approx(out["mean_auc_int8"] - out["mean_auc_float32"])
    assert out["difference_ci"][0] <= out["mean_auc_difference"] <= out["difference_ci"][1]
    assert out["largest_score_change"] == pytest.approx(np.abs(p8 - p32).max())
    same = compare_precisions(labels, patients, p32, p32, keys, resamples=50)
    assert same["mean_auc_difference"] == 0 and same["largest_score_change"] == 0


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_predict_records_say_which_precision_ran(monkeypatch, capsys, precision):
    from kdviewer.cli import main
    from kdviewer.core.resources import example_image

    monkeypatch.setenv("KDVIEWER_PRECISION", precision)
    assert main(["predict", str(example_image()), "--format", "jsonl"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["model"] == "student" and record["precision"] == precision
    assert main(["predict", str(example_image()), "--format", "csv"]) == 0
    head, row = capsys.readouterr().out.splitlines()[:2]
    assert row.split(",")[head.split(",").index("precision")] == precision


def test_quantize_graph_gives_a_qdq_graph_close_to_float32():
    """The quantize stage's core on the shipped float32 student, calibrated on a few reference-like
    inputs: a QDQ graph ONNX Runtime loads, whose scores on those inputs stay near float32's."""
    pytest.importorskip("onnx")
    from kdviewer.core.preprocess import InputSpec, image_to_model_input
    from training.quantize import graph_probs, quantize_graph

    card = read_card(STUDENT)
    fp32 = (STUDENT.parent / card.onnx_file).read_bytes()
    x = np.stack([image_to_model_input(reference_image((300 + 20 * i, 260)), InputSpec()) for i in range(4)])
    int8 = quantize_graph(fp32, x)
    assert b"QuantizeLinear" in int8 and b"DequantizeLinear" in int8 and int8 != fp32
    change = np.abs(graph_probs(int8, x) - graph_probs(fp32, x))
    assert 0 < change.max() < 0.1


def test_info_names_the_precision_each_model_runs(monkeypatch, capsys):
    from kdviewer.cli import main

    monkeypatch.delenv("KDVIEWER_PRECISION", raising=False)
    main(["info", "--json"])
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    want = "int8" if read_card(STUDENT).int8["default"] else "float32"
    assert models["student"]["precision"] == want and models["teacher"]["precision"] == "float32"
