"""kdviewer-train scope on a small NIH-format folder: the card gains a verified scope section (weights,
graph and self-test untouched), val acceptance meets the bar it was chosen for, and the
evaluation reports rejection per out-of-scope kind."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from kdviewer.core import scope
from kdviewer.core.engine import InferenceEngine
from kdviewer.core.modelcard import read_card
from kdviewer.core.resources import resources_dir
from training.cli import main
from training.scope import evaluate_scopes, fit_scopes

STUDENT = resources_dir() / "models" / "student.json"


@pytest.fixture
def small_nih(nih_dir, tmp_path) -> Path:
    """60 train and 30 val images of the shared NIH folder, in the same layout."""
    with open(nih_dir / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    picked = [r for r in rows if r["split"] == "train"][:60] + [r for r in rows if r["split"] == "val"][:30]
    root = tmp_path / "nih"
    (root / "images").mkdir(parents=True)
    for r in picked:
        shutil.copyfile(nih_dir / r["image"], root / r["image"])
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(picked)
    return root


@pytest.fixture
def models(tmp_path) -> Path:
    """A copy of the shipped student card without its scope section."""
    folder = tmp_path / "models"
    folder.mkdir()
    card = read_card(STUDENT)
    for name in (card.weights_file, card.onnx_file, *([card.int8["file"]] if card.int8 else [])):
        shutil.copyfile(STUDENT.parent / name, folder / name)
    (folder / "student.json").write_text(card.with_updates(scope=None).to_json())
    return folder


def test_fit_writes_a_verified_scope_and_leaves_the_model_alone(small_nih, models, dicom_dir, tmp_path):
    before = json.loads((models / "student.json").read_text())
    ood = tmp_path / "ood" / "non_chest_cr"
    ood.mkdir(parents=True)
    for name in ("wg04_RG2_UNC.dcm", "wg04_RG3_UNC.dcm"):
        shutil.copyfile(dicom_dir / "other_cr" / name, ood / name)

    section = fit_scopes(models, small_nih, ood.parent, components=(8, 8))
    after = json.loads((models / "student.json").read_text())
    assert {k: v for k, v in after.items() if k != "scope"} == before  # weights, metrics, reference kept
    card = read_card(models / "student.json")
    assert card.scope == section and section["fitted_on"]["images"] == 60
    assert section["acceptance"]["val"] >= 0.98
    assert section["figures"]["in_scope"]["val"]["accepted"] == section["acceptance"]["val"]
    hip_tibia = section["figures"]["out_of_scope"]["non_chest_cr"]
    assert hip_tibia["images"] == 2 and hip_tibia["rejected"] == 1.0
    assert section["figures"]["out_of_scope"]["synthetic: blank"]["rejected"] == 1.0

    engine = InferenceEngine.from_card(models / "student.json")
    assert engine.status.state == "ok"  # the self-test still passes
    model = scope.scope_of_engine(engine)
    assert model is not None and model.thresholds == section["thresholds"]

    out = tmp_path / "eval" / "scope.json"
    result = evaluate_scopes(models, small_nih, ood.parent, out)
    assert json.loads(out.read_text()) == result
    assert result["in_scope"]["val"]["accepted"] == section["acceptance"]["val"]


def test_scope_stage_needs_the_data(models):
    assert main(["scope", "--models", str(models)]) == 2
