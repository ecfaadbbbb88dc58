"""The heat maps' border share, and what evaluate reports beside the AUCs (val with a test split,
an ensemble, a baseline folder of cards, the border shares written into cards)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.cli import main
from training.heatmaps import border_mask, border_shares, flat_share

from .conftest import tiny_sets


def test_the_border_band_is_a_tenth_of_each_side():
    mask = border_mask(10, 0.1)
    assert mask[0].all() and mask[:, -1].all() and not mask[1:9, 1:9].any()
    assert flat_share(10) == pytest.approx(0.36) and flat_share(224) == pytest.approx(1 - (180 / 224) ** 2)


def test_evidence_in_the_centre_scores_low_on_the_rim_high_and_none_is_left_out():
    feats = np.zeros((2, 1, 7, 7), dtype=np.float32)
    feats[0, 0, 3, 3] = 1.0  # centre
    feats[1, 0, 0, 6] = 1.0  # a corner
    weights = np.array([[1.0], [-1.0]], dtype=np.float32)  # the second finding sees no positive evidence
    shares = border_shares(feats, weights, 70)
    assert shares[0, 0] < 0.05 < flat_share(70) < 0.5 < shares[1, 0]
    assert np.isnan(shares[:, 1]).all()


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("hm")
    # 64 px: a 2 x 2 feature map (at 32 px the 1 x 1 map is flat and has no border share)
    common = [
        "--data-root",
        str(tiny_data),
        "--workdir",
        str(work),
        *tiny_sets(["train.epochs=1", "input.size=64"]),
    ]
    for stage in ("teacher", "student"):
        assert main([stage, *common]) == 0
    assert main(["export", *common, "--out", str(work / "models")]) == 0
    return work, common


def test_evaluate_reports_val_beside_test_an_ensemble_a_baseline_and_border_shares(exported):
    work, common = exported
    assert main(["evaluate", *common, "--baseline", str(work / "models"), "--set", "eval.ensemble=true"]) == 0
    m = json.loads((work / "evaluation" / "metrics.json").read_text())
    assert m["split"] == "test" and m["ensemble"]["members"] == ["teacher", "student_plain"]
    names = {"teacher", "student_plain", "baseline_teacher", "baseline_student_plain", "ensemble"}
    assert set(m["models"]) == names and set(m["val"]["models"]) == names
    # the baseline holds the same weights: its paired difference is exactly zero, on both splits
    for figures in (m, m["val"]):
        comp = figures["comparisons"]["student_plain_vs_baseline_student_plain"]
        assert comp["difference"] == 0 and "ensemble_vs_teacher" in figures["comparisons"]
    border = m["models"]["teacher"]["heatmap_border"]
    assert border["split"] == "val" and border["fraction"] == 0.1
    shares = [v for v in border["findings"].values() if v is not None]
    assert shares and all(0 <= v <= 1 for v in shares)
    assert border["mean"] == pytest.approx(np.mean(shares))
    assert "heatmap_border" not in m["models"]["ensemble"]  # no single map to measure
    summary = (work / "evaluation" / "summary.md").read_text()
    assert "Heat maps: share of the class activation map" in summary and "## The val split" in summary


def test_update_cards_writes_the_border_shares_and_nothing_else(exported, tmp_path):
    work, common = exported
    card = work / "models" / "teacher.json"
    before = json.loads(card.read_text())
    args = ["evaluate", *common[:2], "--workdir", str(tmp_path), *common[4:]]
    assert main([*args, "--models", str(work / "models"), "--update-cards"]) == 0
    after = json.loads(card.read_text())
    measured = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert after["metrics"]["heatmap_border"] == measured["models"]["teacher"]["heatmap_border"]
    assert list(after) == list(before)
    assert {k: v for k, v in after["metrics"].items() if k != "heatmap_border"} == {
        k: v for k, v in before["metrics"].items() if k != "heatmap_border"
    }
    assert {k: v for k, v in after.items() if k != "metrics"} == {
        k: v for k, v in before.items() if k != "metrics"
    }
