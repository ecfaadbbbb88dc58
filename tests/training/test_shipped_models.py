"""The bundled models: complete, verified cards whose val figures re-measure from the shipped weights.

The second test runs ``kdviewer-train evaluate --models resources/models`` on the NIH val split in
../shared (skipped where it is absent) and checks every AUC, threshold and paired difference
recorded in the cards, and the mean AUCs quoted in docs/MODELS.md and the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.modelcard import find_cards, load_model, read_card
from kdviewer.core.resources import resources_dir
from training.cli import main

MODELS = resources_dir() / "models"
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"teacher": "densenet121", "student": "mobilenet_v2", "student_plain": "mobilenet_v2"}


def test_bundled_cards_are_trained_verified_and_complete():
    cards = find_cards([MODELS])
    assert set(cards) == set(SHIPPED)
    for name, arch in SHIPPED.items():
        model, card = load_model(cards[name])  # SHA-256 checked, strict load
        assert (card.architecture, model.arch, card.trained) == (arch, arch, True)
        assert card.input.size == 224 and set(card.thresholds) == set(FINDING_KEYS)
        assert card.metrics["split"] == "val" and card.metrics["images"] == 284
        assert set(card.metrics["findings"]) == set(FINDING_KEYS)
        assert card.reference["scores"] and card.training["result"]["best_epoch"] >= 1
        border = card.metrics["heatmap_border"]
        assert border["split"] == "val" and set(border["findings"]) == set(FINDING_KEYS)
    student = read_card(cards["student"])
    assert {"teacher_vs_student", "student_vs_student_plain"} <= set(student.metrics["comparisons"])


def test_val_figures_of_the_cards_reproduce_from_the_shipped_weights(nih_dir, tmp_path):
    rc = main(
        [
            "evaluate",
            "--models",
            str(MODELS),
            "--config",
            str(ROOT / "training/configs/nih.toml"),
            "--data-root",
            str(nih_dir),
            "--workdir",
            str(tmp_path),
            "--no-progress",
            "--set",
            'data.cache="memory"',
            "--set",
            "eval.bootstrap=20",
        ]
    )
    assert rc == 0
    measured = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    cards = find_cards([MODELS])
    for name in SHIPPED:
        card = read_card(cards[name])
        got = measured["models"][name]
        assert got["mean_auc"] == pytest.approx(card.metrics["mean_auc"], abs=1e-4)
        for k in FINDING_KEYS:
            assert got["findings"][k]["auc"] == pytest.approx(card.metrics["findings"][k]["auc"], abs=1e-4)
            assert got["thresholds"][k] == pytest.approx(card.thresholds[k], abs=1e-4)
        for key, comp in card.metrics["comparisons"].items():
            assert measured["comparisons"][key]["difference"] == pytest.approx(comp["difference"], abs=1e-4)
        border = measured["models"][name]["heatmap_border"]
        assert border["mean"] == pytest.approx(card.metrics["heatmap_border"]["mean"], abs=1e-4)
        for k, share in border["findings"].items():
            assert share == pytest.approx(card.metrics["heatmap_border"]["findings"][k], abs=1e-4)
    for page in ("docs/MODELS.md", "README.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        for name in SHIPPED:
            assert f"{measured['models'][name]['mean_auc']:.3f}" in text, (page, name)
    models_page = (ROOT / "docs/MODELS.md").read_text(encoding="utf-8")
    for name in SHIPPED:  # the heat maps' border shares beside the AUCs
        assert f"{measured['models'][name]['heatmap_border']['mean']:.3f}" in models_page, name
