"""AUC, bootstrap and Youden thresholds against hand-computed examples."""

import numpy as np
import pytest

from training.metrics import (
    auc_report,
    bootstrap_weights,
    paired_bootstrap,
    roc_auc,
    weighted_auc,
    youden_threshold,
)


def test_auc_hand_examples():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.2]) == 0.0
    # ties count one half: pairs (pos .5 vs neg .5) tie, (pos .5 vs neg .1) win -> (0.5 + 1) / 2
    assert roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 0, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))
    assert roc_auc([0, np.nan, 1], [0.1, 5.0, 0.2]) == 1.0  # unknown labels are dropped


def test_auc_agrees_with_sklearn_when_available():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_weighted_auc_equals_auc_of_repeated_data():
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.2, 0.6, 0.6, 0.9, 0.1])
    w = np.array([[1, 1, 1, 1, 1], [2, 0, 1, 3, 1], [0, 1, 0, 1, 0]])
    got = weighted_auc(y, s, w)
    for r in range(2):
        rep = np.repeat(np.arange(5), w[r])
        assert got[r] == pytest.approx(roc_auc(y[rep], s[rep]))
    assert np.isnan(got[2])  # no negative drawn


def test_patient_bootstrap_moves_a_patients_images_together():
    patients = np.array(["a", "a", "b", "c", "c", "c"])
    w = bootstrap_weights(patients, 6, 100, seed=1, unit="patient")
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()
    assert (w[:, [0, 2, 3]].sum(axis=1) == 3).all()  # 3 patients drawn per resample
    wi = bootstrap_weights(None, 6, 100, seed=1, unit="image")
    assert (wi.sum(axis=1) == 6).all()
    np.testing.assert_array_equal(w, bootstrap_weights(patients, 6, 100, seed=1))  # seeded


def test_auc_report_ci_brackets_point_and_mean():
    rng = np.random.default_rng(3)
    n = 120
    labels = (rng.random((n, 5)) < 0.4).astype(float)
    labels[::9, 2] = np.nan
    scores = labels * 0.8 + rng.random((n, 5))
    rep = auc_report(labels, scores, np.arange(n) // 2, resamples=300, seed=0)
    for e in rep["findings"].values():
        assert e["ci"][0] <= e["auc"] <= e["ci"][1]
    assert rep["mean_auc_ci"][0] <= rep["mean_auc"] <= rep["mean_auc_ci"][1]
    assert rep["mean_auc"] == pytest.approx(np.mean([e["auc"] for e in rep["findings"].values()]))


def test_paired_bootstrap_difference_sign_and_p():
    rng = np.random.default_rng(4)
    n = 150
    labels = (rng.random((n, 5)) < 0.5).astype(float)
    good = labels + rng.normal(0, 0.5, (n, 5))
    bad = labels + rng.normal(0, 2.0, (n, 5))
    c = paired_bootstrap(labels, good, bad, np.arange(n), resamples=300, seed=0)
    assert c["difference"] > 0 and c["ci"][0] > 0 and c["p_le_0"] < 0.05
    same = paired_bootstrap(labels, good, good, np.arange(n), resamples=50, seed=0)
    assert same["difference"] == 0 and same["p_le_0"] == 1.0


def test_youden_threshold_hand_example():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    # t=0.4: sens 1, spec 2/3 -> J 0.667; t=0.7: sens 2/3, spec 1 -> J 0.667; tie -> higher threshold
    assert youden_threshold(y, p) == pytest.approx(0.7)
    y2 = np.array([0, 0, 1, 1])
    p2 = np.array([0.2, 0.3, 0.35, 0.8])
    assert youden_threshold(y2, p2) == pytest.approx(0.35)  # perfect separation at 0.35
    assert youden_threshold(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5
