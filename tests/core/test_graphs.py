"""Model cards that ship their ONNX graph: exported and checked by the training package, verified
by SHA-256 when loaded, run without PyTorch and without the export cache."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from kdviewer.core import explain
from kdviewer.core.engine import InferenceEngine
from kdviewer.core.errors import ModelLoadError
from kdviewer.core.extras import MissingExtraError
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.modelcard import (
    find_cards,
    load_model,
    parameter_count,
    read_card,
    verified_graph,
    verified_weights,
)
from kdviewer.core.models import count_parameters
from kdviewer.core.resources import resources_dir
from tests.core import engine_helpers as H
from training.cli import main as train_main
from training.export import FEATURE_TOLERANCE, GRAPH_TOLERANCE, graph_deviation


@pytest.fixture(scope="module")
def _with_graph(tmp_path_factory):
    """An untrained student card, saved, then given its graph by ``kdviewer-train graphs``."""
    folder = tmp_path_factory.mktemp("graph-card")
    model, path, _ = H.save_untrained_student(folder, seed=2)
    before = json.loads(path.read_text())
    weights = (folder / "student.safetensors").read_bytes()
    assert train_main(["graphs", "--models", str(folder)]) == 0
    return model, path, before, weights


@pytest.fixture()
def with_graph(_with_graph, tmp_path):
    """A fresh copy of the card, its weights and its graph in ``tmp_path / "models"``."""
    model, path, _, _ = _with_graph
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("student.json", "student.safetensors", "student.onnx"):
        shutil.copyfile(path.parent / name, folder / name)
    return model, folder / "student.json"


def test_graphs_stage_adds_only_the_graph_fields(_with_graph):
    model, path, before, weights = _with_graph
    after = json.loads(path.read_text())
    assert after.pop("onnx_file") == "student.onnx"
    digest = after.pop("onnx_sha256")
    assert after == before and list(after) == list(before)  # nothing else changed, order kept
    assert (path.parent / "student.safetensors").read_bytes() == weights
    card = read_card(path)
    assert verified_graph(card, path) == (path.parent / "student.onnx").read_bytes()
    assert (
        card.onnx_sha256 == digest and oct(os.stat(path.parent / "student.onnx").st_mode & 0o777) == "0o644"
    )
    logits, feats = graph_deviation(model, verified_graph(card, path), card)
    assert logits <= GRAPH_TOLERANCE and feats <= FEATURE_TOLERANCE


@pytest.mark.parametrize("name", ["student", "student_plain", "teacher"])
def test_shipped_graphs_match_their_pytorch_models(name):
    path = find_cards([resources_dir() / "models"])[name]
    model, card = load_model(path)
    graph = verified_graph(card, path)
    assert graph is not None, f"{path} ships no ONNX graph"
    logits, feats = graph_deviation(model, graph, card)
    assert logits <= GRAPH_TOLERANCE and feats <= GRAPH_TOLERANCE  # the trained ones are closer still


def test_a_card_with_its_graph_runs_without_the_cache_or_pytorch(with_graph, tmp_path, monkeypatch):
    model, path = with_graph
    cache = tmp_path / "cache"
    monkeypatch.setenv("KDVIEWER_CACHE", str(cache))
    eng = InferenceEngine.from_card(path)
    assert eng._model is None and eng.runtime_name == "onnxruntime" and eng.status.state == "ok"
    assert eng.describe()["onnx"] == str(path.parent / "student.onnx")
    assert not cache.exists() or not any(cache.iterdir())  # nothing exported
    eager = InferenceEngine(model, read_card(path), runtime="torch-eager")
    img = H.grey_image((120, 90), blob=(50, 40))
    a, b = eng.predict(img, measure_energy=False), eager.predict(img, measure_energy=False)
    assert dict(a.scores) == pytest.approx(dict(b.scores), abs=1e-4)
    for k in FINDING_KEYS:
        np.testing.assert_allclose(a.heatmaps[k], b.heatmaps[k], atol=1e-3)


def test_an_altered_missing_or_escaping_graph_is_an_error_naming_it(with_graph, tmp_path):
    _, path = with_graph
    graph = path.parent / "student.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="SHA-256") as info:
        InferenceEngine.from_card(path)  # never a fall-back to the cache or PyTorch
    assert info.value.path == str(graph)
    graph.unlink()
    with pytest.raises(ModelLoadError, match="ONNX graph is missing"):
        InferenceEngine.from_card(path)
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(bytes(data))
    graph.symlink_to(outside)
    with pytest.raises(ModelLoadError, match="outside the card's folder"):
        InferenceEngine.from_card(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"onnx_sha256": None}, "go together"),
        ({"onnx_file": None}, "go together"),
        ({"onnx_file": "../student.onnx"}, "plain file name"),
        ({"onnx_sha256": "ABC"}, "onnx_sha256"),
    ],
)
def test_graph_fields_are_validated(with_graph, changes, message):
    _, path = with_graph
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))
    with pytest.raises(ModelLoadError, match=message):
        read_card(path)


def test_parameters_counted_from_the_weights_header_equal_pytorch(with_graph):
    model, path = with_graph
    assert parameter_count(verified_weights(read_card(path), path)) == count_parameters(model)


def test_library_heat_maps_without_the_explain_extra_say_how_to_get_it(with_graph, monkeypatch):
    _, path = with_graph
    eng = InferenceEngine.from_card(path)
    monkeypatch.setattr(explain, "library_methods_available", lambda: False)
    with pytest.raises(MissingExtraError, match=r"layercam heat map needs PyTorch.*kdviewer\[explain\]"):
        eng.predict(H.grey_image((60, 60)), heatmaps=["edema"], cam_method="layercam", measure_energy=False)
    assert eng._model is None  # PyTorch was not loaded for it
    assert eng.predict(H.grey_image((60, 60)), measure_energy=False).cam_method == "gradcam"
