"""Learning curves and ROC curves as PNG files (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdviewer.core.findings import FINDING_KEYS, FINDING_NAMES


def _pyplot():
    import matplotlib  # 0.3 s, and its backend must be chosen before pyplot loads: only when plotting

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    """Train/val loss, validation mean AUC and learning rate per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", label="val (BCE)")
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(
        epochs,
        [np.nan if h["val_mean_auc"] is None else h["val_mean_auc"] for h in history],
        "o-",
        color="k",
        label="mean",
    )
    for k in FINDING_KEYS:
        vals = [h["val_auc"].get(k) for h in history]
        axes[1].plot(epochs, [np.nan if v is None else v for v in vals], lw=0.8, label=k)
    axes[1].set_title("validation ROC-AUC")
    axes[1].legend(fontsize=7)
    axes[2].semilogy(epochs, [h["lr"] for h in history], "o-")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (from (0,0) to (1,1))."""
    keep = ~np.isnan(y)
    y, s = y[keep], score[keep]
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y == 1)[last]
    fp = np.cumsum(y == 0)[last]
    P, N = max((y == 1).sum(), 1), max((y == 0).sum(), 1)
    return np.r_[0, fp / N], np.r_[0, tp / P]


def plot_roc(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    aucs: dict[str, dict],
    path: str | Path,
    title: str = "",
) -> None:
    """One panel per finding, one curve per model, AUCs in the legend."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(FINDING_KEYS), figsize=(4 * len(FINDING_KEYS), 4))
    for j, (key, name) in enumerate(zip(FINDING_KEYS, FINDING_NAMES, strict=True)):
        ax = axes[j]
        for model, s in scores.items():
            fpr, tpr = roc_points(labels[:, j], s[:, j])
            auc = aucs[model]["findings"][key]["auc"]
            ax.plot(fpr, tpr, label=f"{model} {auc:.3f}")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(name)
        ax.set_xlabel("1 − specificity")
        ax.set_ylabel("sensitivity")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
