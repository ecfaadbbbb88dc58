"""ROC-AUC (rank formula, ties averaged), bootstrap confidence intervals and Youden thresholds.

Pure numpy. The bootstrap is vectorised: a resample is a vector of integer weights (how often
each image was drawn; with ``unit="patient"`` every image of a drawn patient gets that patient's
count), and the weighted Mann–Whitney statistic is computed for all resamples at once over the
sorted distinct scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdviewer.core.findings import FINDING_KEYS


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted ½.

    Uses the rank-sum formula with average ranks for ties; NaN labels are dropped. Returns NaN
    when there are no positives or no negatives.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    keep = ~np.isnan(y)
    y, s = y[keep], s[keep]
    n_pos = int((y == 1).sum())
    n_neg = int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank per block of equal scores (1-based)
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of ``weights`` (R, N): every image counted ``weights[r, i]`` times.

    ``y`` must have no NaN. Rows without a positive or a negative give NaN.
    """
    y = np.asarray(y)
    s = np.asarray(score, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    uniq, inv = np.unique(s, return_inverse=True)
    pos = y == 1
    k = len(uniq)
    # per distinct score level: weighted positives and negatives, each row separately
    P = np.zeros((w.shape[0], k))
    N = np.zeros((w.shape[0], k))
    np.add.at(P.T, inv[pos], w[:, pos].T)
    np.add.at(N.T, inv[~pos], w[:, ~pos].T)
    below = np.cumsum(N, axis=1) - N  # negatives strictly below each level
    num = (P * (below + 0.5 * N)).sum(axis=1)
    den = P.sum(axis=1) * N.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_weights(
    patients: np.ndarray | None, n: int, resamples: int, seed: int, unit: str = "patient"
) -> np.ndarray:
    """Integer weights (resamples, n): images (``unit="image"``) or patients drawn with replacement."""
    rng = np.random.default_rng(seed)
    if unit == "image" or patients is None:
        draws = rng.integers(0, n, size=(resamples, n))
        w = np.zeros((resamples, n), dtype=np.int32)
        np.add.at(w, (np.repeat(np.arange(resamples), n), draws.ravel()), 1)
        return w
    uniq, group = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    m = len(uniq)
    draws = rng.integers(0, m, size=(resamples, m))
    counts = np.zeros((resamples, m), dtype=np.int32)
    np.add.at(counts, (np.repeat(np.arange(resamples), m), draws.ravel()), 1)
    return counts[:, group]


def _per_finding_boot(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, chunk: int = 200
) -> np.ndarray:
    """(resamples, findings) AUCs."""
    out = np.full((weights.shape[0], labels.shape[1]), np.nan)
    for j in range(labels.shape[1]):
        known = ~np.isnan(labels[:, j])
        for a in range(0, weights.shape[0], chunk):
            out[a : a + chunk, j] = weighted_auc(
                labels[known, j], scores[known, j], weights[a : a + chunk][:, known]
            )
    return out


def _ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(v, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Bootstrap:
    """How a bootstrap resamples: ``resamples`` draws of ``unit`` (patient or image) from a
    generator seeded with ``seed``, percentile CIs at ``confidence``."""

    resamples: int = 1000
    seed: int = 0
    unit: str = "patient"
    confidence: float = 0.95

    def weights(self, patients: np.ndarray | None, n: int) -> np.ndarray:
        return bootstrap_weights(patients, n, self.resamples, self.seed, self.unit)


def auc_report(labels: np.ndarray, scores: np.ndarray, patients: np.ndarray | None, **options) -> dict:
    """Per-finding AUC with bootstrap CI, and mean AUC (over findings with an AUC) with its CI.

    ``labels``/``scores`` are (N, findings); scores are probabilities or logits (AUC is rank-based).
    ``options`` are the fields of :class:`Bootstrap` (resamples, seed, unit, confidence).
    """
    b = Bootstrap(**options)
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    point = np.array([roc_auc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])])
    report: dict = {
        "unit": b.unit,
        "resamples": b.resamples,
        "confidence": b.confidence,
        "seed": b.seed,
        "findings": {},
    }
    boot = None
    if b.resamples > 0:
        boot = _per_finding_boot(labels, scores, b.weights(patients, len(labels)))
    for j, key in enumerate(FINDING_KEYS[: labels.shape[1]]):
        known = labels[~np.isnan(labels[:, j]), j]
        entry = {
            "auc": float(point[j]),
            "positives": int((known == 1).sum()),
            "negatives": int((known == 0).sum()),
        }
        if boot is not None:
            entry["ci"] = list(_ci(boot[:, j], b.confidence))
        report["findings"][key] = entry
    defined = ~np.isnan(point)
    report["mean_auc"] = float(point[defined].mean()) if defined.any() else float("nan")
    if boot is not None:
        mean_boot = boot[:, defined].mean(axis=1)  # NaN where a resample lost a finding's class
        report["mean_auc_ci"] = list(_ci(mean_boot, b.confidence))
        report["resamples_undefined"] = int(np.isnan(mean_boot).sum())
    return report


def mean_auc(labels: np.ndarray, scores: np.ndarray) -> tuple[float, list[float]]:
    """Mean AUC over findings that have both classes, and the per-finding AUCs (NaN where undefined)."""
    per = [roc_auc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    vals = [a for a in per if not np.isnan(a)]
    return (float(np.mean(vals)) if vals else float("nan")), per


def paired_bootstrap(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, patients: np.ndarray | None, **options
) -> dict:
    """Mean AUC of model A minus model B on the same images, resampled together (``options``:
    the fields of :class:`Bootstrap`).

    Returns the observed difference, its CI and ``p_le_0``: the fraction of resamples in which the
    difference is ≤ 0 (a one-sided bootstrap p-value for "A is better than B").
    """
    b = Bootstrap(**options)
    labels = np.asarray(labels, dtype=np.float64)
    ma, _ = mean_auc(labels, np.asarray(scores_a))
    mb, _ = mean_auc(labels, np.asarray(scores_b))
    w = b.weights(patients, len(labels))
    ba = _per_finding_boot(labels, np.asarray(scores_a, dtype=np.float64), w)
    bb = _per_finding_boot(labels, np.asarray(scores_b, dtype=np.float64), w)
    defined = ~np.isnan(ba).all(axis=0)
    diff = ba[:, defined].mean(axis=1) - bb[:, defined].mean(axis=1)
    valid = diff[~np.isnan(diff)]
    lo, hi = _ci(diff, b.confidence)
    return {
        "mean_auc_a": ma,
        "mean_auc_b": mb,
        "difference": ma - mb,
        "ci": [lo, hi],
        "p_le_0": float((valid <= 0).mean()) if len(valid) else float("nan"),
        "resamples": b.resamples,
        "unit": b.unit,
        "seed": b.seed,
        "confidence": b.confidence,
    }


def youden_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity − 1 (positive means prob ≥ threshold).

    Candidates are the distinct observed probabilities; among equal J the highest threshold wins.
    Returns 0.5 when the labels have only one class.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    n_pos, n_neg = (y == 1).sum(), (y == 0).sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5
    cand = np.unique(p)[::-1]  # descending
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    # for threshold c: TP = positives with p >= c
    idx = np.searchsorted(-ps, -cand, side="right")  # count of p >= c
    tp = np.concatenate([[0], np.cumsum(ys == 1)])[idx]
    fp = np.concatenate([[0], np.cumsum(ys == 0)])[idx]
    j = np.round(tp / n_pos - fp / n_neg, 12)  # equal J must compare equal despite rounding
    return float(cand[int(np.argmax(j))])  # argmax takes the first (highest threshold) on ties
