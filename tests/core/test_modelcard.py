import json

import pytest
import torch

from kdviewer.core.errors import ModelLoadError
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.modelcard import ModelCard, find_cards, load_model, read_card, save_model
from kdviewer.core.models import build_model


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(1)
    model = build_model("mobilenet_v2")
    card = ModelCard(name="student", architecture="mobilenet_v2", weights_file="student.safetensors", weights_sha256="")
    path, card = save_model(model, card, tmp_path)
    return model, path, card


def test_round_trip_verifies_hash_and_loads_strictly(saved):
    model, path, card = saved
    loaded, card2 = load_model(path)
    assert card2 == card and len(card.weights_sha256) == 64
    assert not loaded.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_tampered_weights_are_refused(saved):
    _, path, card = saved
    w = path.parent / card.weights_file
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_model(path)


def test_weights_for_another_architecture_are_refused(saved, tmp_path):
    _, path, card = saved
    d = json.loads(path.read_text())
    d["architecture"] = "densenet121"
    path.write_text(json.dumps(d))
    with pytest.raises(ModelLoadError, match="do not load"):
        load_model(path)


def test_missing_weights(saved):
    _, path, card = saved
    (path.parent / card.weights_file).unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(path)


@pytest.mark.parametrize(
    "change",
    [
        {"findings": ["atelectasis", "pneumothorax", "consolidation", "edema", "pleural_effusion"]},
        {"thresholds": {"pneumothorax": 0.5}},
        {"schema": 99},
        {"surprise": 1},
        {"input": {"size": 224, "scaling": "percentile"}},
    ],
)
def test_invalid_cards_name_the_file(saved, change):
    _, path, _ = saved
    d = json.loads(path.read_text())
    d.update(change)
    path.write_text(json.dumps(d))
    with pytest.raises(ModelLoadError, match=path.name):
        read_card(path)


def test_card_json_round_trip(saved):
    _, path, card = saved
    assert read_card(path).input == card.input
    assert tuple(json.loads(path.read_text())["findings"]) == FINDING_KEYS


def test_find_cards_skips_broken_cards(saved, tmp_path):
    _, path, _ = saved
    (tmp_path / "broken.json").write_text("{not json")
    assert find_cards([tmp_path]) == {"student": path}
