import json
import os
import shutil
import threading

import pytest
import torch
from safetensors.torch import save_file

from kdviewer.core.engine import with_reference
from kdviewer.core.errors import ModelLoadError
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.modelcard import (
    MAX_CARD_BYTES,
    ModelCard,
    find_cards,
    load_model,
    read_card,
    save_model,
    scan_cards,
    sha256_file,
    verified_weights,
)
from kdviewer.core.models import build_model


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    torch.manual_seed(1)
    model = build_model("mobilenet_v2").eval()
    card = ModelCard(
        name="student", architecture="mobilenet_v2", weights_file="student.safetensors", weights_sha256=""
    )
    path, card = save_model(model, with_reference(model, card), tmp_path_factory.mktemp("card"))
    return model, path, card


@pytest.fixture()
def saved(_template, tmp_path):
    """A fresh copy of one saved student card and its weights in ``tmp_path / "models"``."""
    model, path, card = _template
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (path.name, card.weights_file):
        shutil.copyfile(path.parent / name, folder / name)
    return model, folder / path.name, card


def _edit(path, **changes):
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))


def _finishes(fn, seconds=10.0):
    """Run ``fn`` in a thread; return what it raised (None if nothing), failing if it hangs."""
    box = []

    def run():
        try:
            fn()
            box.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "hung"
    return box[0]


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


REF = {
    "input": {"generator": "kdviewer.core.engine.reference_image", "version": 1, "shape": [320, 256]},
    "scores": {k: 0.5 for k in FINDING_KEYS},
}


@pytest.mark.parametrize(
    "change",
    [
        {"findings": ["atelectasis", "pneumothorax", "consolidation", "edema", "pleural_effusion"]},
        {"findings": "atelectasis"},
        {"thresholds": {"pneumothorax": 0.5}},
        {"thresholds": {"edema": 1.5}},
        {"thresholds": {"edema": -0.1}},
        {"thresholds": {"edema": "0.5"}},
        {"thresholds": {"edema": True}},
        {"thresholds": [0.5]},
        {"schema": 99},
        {"surprise": 1},
        {"input": {"size": 224, "scaling": "percentile"}},
        {"input": {"size": 0}},
        {"input": {"size": 60000}},
        {"input": {"size": 31}},
        {"input": {"size": 1025}},
        {"input": {"size": "224"}},
        {"input": {"size": 224.0}},
        {"input": {"channels": 1, "mean": [0.5], "std": [0.2]}},
        {"input": {"std": [0.229, 0.0, 0.225]}},
        {"input": {"mean": [0.5, 0.5]}},
        {"input": {"resample": "lanczos"}},
        {"input": {"reducing_gap": 0.5}},
        {"input": {"colour": "yes"}},
        {"input": []},
        {"weights_file": "../student.safetensors"},
        {"weights_file": "/etc/passwd"},
        {"weights_file": "sub/student.safetensors"},
        {"weights_file": ".."},
        {"weights_file": ""},
        {"weights_file": 7},
        {"weights_sha256": "abc"},
        {"weights_sha256": "A" * 64},
        {"name": "../../etc"},
        {"name": ""},
        {"architecture": "../../evil"},
        {"architecture": 3},
        {"trained": "yes"},
        {"trained": 1},
        {"description": None},
        {"versions": {"torch": 2}},
        {"reference": None},
        {"reference": {**REF, "scores": {"edema": 0.5}}},
        {"reference": {**REF, "scores": {**REF["scores"], "edema": 2.0}}},
        {"reference": {**REF, "input": {**REF["input"], "shape": [60000, 60000]}}},
        {"reference": {**REF, "input": {**REF["input"], "shape": [320]}}},
    ],
)
def test_invalid_cards_name_the_file(saved, change):
    _, path, _ = saved
    _edit(path, **change)
    with pytest.raises(ModelLoadError, match=path.name):
        read_card(path)


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ('{"name": NaN}', "NaN is not a finite number"),
        ('{"name": "student", "name": "teacher"}', "duplicate keys"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ("[1, 2]", "must be a JSON object"),
        (b"\xff\xfe{}", "codec"),
        ("", "Expecting value"),
    ],
)
def test_hostile_card_text_is_a_clear_error(tmp_path, text, cause):
    path = tmp_path / "card.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelLoadError, match=cause):
        read_card(path)


def test_card_size_is_capped_before_reading(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_CARD_BYTES + 1))
    with pytest.raises(ModelLoadError, match="bytes, more than"):
        read_card(path)


def test_card_that_is_a_fifo_or_a_device_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    dev = tmp_path / "zero.json"
    dev.symlink_to("/dev/zero")
    for p in (fifo, dev):
        exc = _finishes(lambda p=p: read_card(p))
        assert isinstance(exc, ModelLoadError) and "not a regular file" in str(exc)


def test_card_json_round_trip(saved):
    _, path, card = saved
    assert read_card(path) == card
    assert tuple(json.loads(path.read_text())["findings"]) == FINDING_KEYS


def test_cards_without_self_test_reference_are_not_written(saved, tmp_path):
    model, _, card = saved
    with pytest.raises(ValueError, match="self-test reference"):
        save_model(model, card.with_updates(reference=None), tmp_path / "other")


# ---------------------------------------------------------------- the weights file


def test_weights_outside_the_card_folder_are_refused(saved, tmp_path):
    _, path, card = saved
    outside = tmp_path / "outside.safetensors"
    (path.parent / card.weights_file).rename(outside)
    (path.parent / card.weights_file).symlink_to(outside)  # a symlink escaping the folder
    with pytest.raises(ModelLoadError, match="outside the card's folder"):
        load_model(path)


def test_weights_that_are_a_device_or_a_fifo_are_refused_without_hanging(saved):
    _, path, card = saved
    w = path.parent / card.weights_file
    w.unlink()
    w.symlink_to("/dev/zero")
    assert "outside the card's folder" in str(_finishes(lambda: verified_weights(card, path)))
    w.unlink()
    os.mkfifo(w)
    assert "not a regular file" in str(_finishes(lambda: verified_weights(card, path)))


def test_weights_whose_size_does_not_match_their_header_are_not_hashed(saved, monkeypatch):
    _, path, card = saved
    w = path.parent / card.weights_file
    with open(w, "ab") as f:
        f.write(b"\0" * 4096)
    _edit(path, weights_sha256=sha256_file(w))  # even with a matching hash
    with pytest.raises(ModelLoadError, match="its safetensors header describes"):
        load_model(path)
    w.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelLoadError, match="header"):
        verified_weights(read_card(path), path)


def test_weights_holding_nan_are_refused(saved):
    model, path, card = saved
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    state["classifier.1.weight"][0, 0] = float("nan")
    w = path.parent / card.weights_file
    save_file(state, str(w))
    _edit(path, weights_sha256=sha256_file(w))
    with pytest.raises(ModelLoadError, match="NaN"):
        load_model(path)


# ---------------------------------------------------------------- model folders


def test_a_broken_card_in_a_models_folder_is_an_error(saved):
    _, path, _ = saved
    (path.parent / "broken.json").write_text("{not json")
    found, problems = scan_cards([path.parent])
    assert found == {"student": path} and [p.path for p in problems] == [str(path.parent / "broken.json")]
    with pytest.raises(ModelLoadError, match="broken.json"):
        find_cards([path.parent])


def test_two_cards_of_one_name_in_one_folder_are_an_error(saved):
    _, path, _ = saved
    (path.parent / "copy.json").write_text(path.read_text())
    with pytest.raises(ModelLoadError, match="a second card named 'student'"):
        find_cards([path.parent])


def test_an_override_folder_shadows_the_bundled_one_and_must_exist(saved, tmp_path, monkeypatch):
    _, path, _ = saved
    monkeypatch.setenv("KDVIEWER_MODELS", str(path.parent))
    assert find_cards()["student"] == path
    monkeypatch.setenv("KDVIEWER_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        find_cards()
