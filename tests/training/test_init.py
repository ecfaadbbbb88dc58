"""Initial weights: none, torchvision's ImageNet weights from a (fake) local cache, or a file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import densenet121, mobilenet_v2

from kdviewer.core.hashing import sha256_file
from kdviewer.core.models import build_model
from training import init as init_mod
from training.cli import main
from training.config import load_config
from training.init import adapt_first_conv, imagenet_file, initialise

from .conftest import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*_a, **_k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def torch_home(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def _fake_imagenet(arch: str, monkeypatch, old_densenet_keys: bool = False) -> dict:
    """Random torchvision weights (1000-class head) saved under the expected file name; the
    published hash prefix is made the fake file's own (a real file carries torchvision's)."""
    torch.manual_seed(1)
    state = (densenet121 if arch == "densenet121" else mobilenet_v2)(weights=None).state_dict()
    if old_densenet_keys:  # the published DenseNet file's layout: "norm.1" for "norm1"
        state = {
            re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()
        }
    path = imagenet_file(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    monkeypatch.setattr(init_mod, "published_sha256_prefix", lambda _name: sha256_file(path)[:8])
    return state


def test_a_missing_imagenet_file_is_one_line_naming_the_file_and_folder(torch_home):
    model = build_model("mobilenet_v2")
    with pytest.raises(FileNotFoundError) as err:
        initialise(model, "imagenet")
    msg = str(err.value)
    assert "\n" not in msg
    assert "mobilenet_v2-7ebf99e0.pth" in msg and str(torch_home / "hub" / "checkpoints") in msg


def test_an_imagenet_file_that_is_not_torchvisions_is_refused(torch_home):
    path = imagenet_file("mobilenet_v2")
    path.parent.mkdir(parents=True)
    torch.save(mobilenet_v2(weights=None).state_dict(), path)  # right name, other bytes
    with pytest.raises(ValueError, match="7ebf99e0"):
        initialise(build_model("mobilenet_v2"), "imagenet")


@pytest.mark.parametrize("arch", ["mobilenet_v2", "densenet121"])
def test_imagenet_weights_load_into_the_body_and_the_head_starts_fresh(arch, torch_home, monkeypatch):
    fake = _fake_imagenet(arch, monkeypatch, old_densenet_keys=arch == "densenet121")
    model = build_model(arch)
    record = initialise(model, "imagenet")
    assert record.sha256 == sha256_file(imagenet_file(arch)) and record.init == "imagenet"
    own = model.state_dict()
    first = init_mod.FIRST_CONV[arch]
    torch.testing.assert_close(own[first], fake[first], rtol=0, atol=0)
    assert own["classifier.1.weight" if arch == "mobilenet_v2" else "classifier.weight"].shape[0] == 5


def test_a_file_of_the_same_network_loads_exactly_with_its_head(tmp_path):
    src = build_model("mobilenet_v2")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = build_model("mobilenet_v2")
    record = initialise(model, str(path))
    assert record.sha256 == sha256_file(path)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    ckpt = tmp_path / "best.pt"  # a run's checkpoint: its "model" entry
    torch.save({"model": src.state_dict(), "epoch": 3}, ckpt)
    initialise(build_model("mobilenet_v2"), str(ckpt))


def test_another_networks_weights_are_a_clear_error(tmp_path):
    path = tmp_path / "dense.pth"
    torch.save(densenet121(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="holds weights of densenet121, not mobilenet_v2"):
        initialise(build_model("mobilenet_v2"), str(path))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        initialise(build_model("mobilenet_v2"), str(tmp_path / "nothing.pth"))


def test_a_one_channel_first_layer_is_adapted_to_grey_replicated_input(tmp_path):
    state = mobilenet_v2(weights=None).state_dict()
    w1 = state["features.0.0.weight"].sum(dim=1, keepdim=True)  # as if trained on 1 channel
    state["features.0.0.weight"] = w1
    path = tmp_path / "one.pth"
    torch.save(state, path)
    model = build_model("mobilenet_v2")
    initialise(model, str(path))
    w3 = model.state_dict()["features.0.0.weight"]
    torch.testing.assert_close(w3, adapt_first_conv(w1, 3))
    grey = torch.rand(1, 1, 9, 9)
    conv = torch.nn.functional.conv2d
    torch.testing.assert_close(conv(grey.repeat(1, 3, 1, 1), w3), conv(grey, w1), rtol=1e-5, atol=1e-5)


def test_the_paper_config_starts_from_imagenet():
    cfg = load_config(ROOT / "training/configs/paper.toml")
    assert (cfg.teacher.init, cfg.student.init) == ("imagenet", "imagenet")


def test_a_run_records_its_init_and_hash_in_the_result_and_card(tiny_data, tmp_path, torch_home, monkeypatch):
    _fake_imagenet("mobilenet_v2", monkeypatch)
    sets = [x for o in (*TINY_OVERRIDES, "train.epochs=1", 'student.init="imagenet"') for x in ("--set", o)]
    common = ["--data-root", str(tiny_data), "--workdir", str(tmp_path / "w"), *sets]
    assert main(["student", *common]) == 0
    result = json.loads((tmp_path / "w" / "student_plain" / "result.json").read_text())
    digest = sha256_file(imagenet_file("mobilenet_v2"))
    assert result["init"] == {
        "init": "imagenet",
        "file": str(imagenet_file("mobilenet_v2")),
        "sha256": digest,
    }
    assert main(["export", *common, "--out", str(tmp_path / "models")]) == 0
    card = json.loads((tmp_path / "models" / "student_plain.json").read_text())
    assert card["training"]["init"]["sha256"] == digest


def test_a_run_without_the_imagenet_file_stops_with_that_line(tiny_data, tmp_path, torch_home, caplog):
    sets = [x for o in (*TINY_OVERRIDES, 'teacher.init="imagenet"') for x in ("--set", o)]
    with caplog.at_level("ERROR"):
        assert main(["teacher", "--data-root", str(tiny_data), "--workdir", str(tmp_path), *sets]) == 2
    assert "densenet121-a639ec97.pth" in caplog.text
