"""The evaluation stage: AUCs with bootstrap CIs, thresholds, ROC curves and paired comparisons.

For every trained model in the work folder (its ``best.pt``), or every model card of a folder
(``--models DIR``: the same figures from exported weights):

* operating thresholds per finding are chosen on the **validation** split by Youden's J
  (sensitivity + specificity − 1, maximised over the observed probabilities; positive means
  probability ≥ threshold);
* ROC-AUC per finding and the mean over findings are measured on the evaluation split (``test``
  when the splits have one, else ``val``, which model selection also used: then they are
  optimistic), with percentile bootstrap CIs (``eval.bootstrap`` resamples, seeded from the run's
  seed, by patient by default so that images of one patient move together);
* paired bootstrap comparisons resample the same patients for two models: teacher vs distilled
  student, and distilled vs plain student (and each model vs its namesake in ``--baseline DIR``,
  e.g. a retrained student vs the shipped one, whose cards are evaluated as ``baseline_<name>``);
* with a test split, the validation split's AUCs and comparisons are reported too (``val``);
* the heat maps' border share (:mod:`training.heatmaps`) of every model and finding on the
  validation split, the viewer's own class activation maps;
* with ``eval.ensemble``, the mean of the models' logits as one more model (``ensemble``).

Writes ``metrics.json``, ``summary.md``, ``roc.png`` and ``predictions.npz`` to ``<workdir>/evaluation``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kdviewer.core.findings import FINDING_KEYS, FINDING_NAMES
from kdviewer.core.modelcard import find_cards, load_model
from kdviewer.core.models import build_model
from kdviewer.core.preprocess import normalize
from training import checkpoint
from training.config import Config, read_config
from training.data import PreparedData, prepare_data
from training.distributed import DistInfo
from training.heatmaps import border_report, model_border_shares
from training.images import collate_batch
from training.metrics import auc_report, paired_bootstrap, youden_threshold
from training.plots import plot_roc
from training.reproducibility import derived_seed
from training.runlog import write_json
from training.workspace import MODEL_NAMES, Workspace

log = logging.getLogger(__name__)

THRESHOLD_RULE = (
    "Youden's J on the validation split: the observed probability t maximising "
    "sensitivity + specificity - 1 for 'positive if probability >= t'"
)
COMPARISONS = (("teacher", "student"), ("student", "student_plain"), ("ensemble", "teacher"))
BASELINE = "baseline_"  # prefix of the models of --baseline DIR


def trained_models(ws: Workspace) -> list[str]:
    """Model names whose run folder has a ``best.pt``, in the order teacher, student_plain, student."""
    return [m for m in MODEL_NAMES if (ws.model_dir(m) / checkpoint.BEST).is_file()]


def load_trained(ws: Workspace, name: str) -> tuple[torch.nn.Module, Config]:
    """The best weights of a run and that run's resolved config."""
    run = ws.model_dir(name)
    run_cfg = read_config(run / "config.json")
    ckpt = checkpoint.load(run / checkpoint.BEST)
    model = build_model(ckpt.get("arch") or run_cfg.teacher.arch)
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval(), run_cfg


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    data: PreparedData,
    split: str,
    cfg: Config,
    device: torch.device | None = None,
    border: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sigmoid probabilities (N, findings) for every image of ``split`` (fp32, no augmentation),
    and with ``border`` the heat maps' border shares (N, findings), else None."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    ds = data.dataset(split, cfg)
    loader = DataLoader(ds, batch_size=max(cfg.train.batch_size, 32), shuffle=False, collate_fn=collate_batch)
    out, shares = [], []
    for x, _y, _i in loader:
        x = normalize(x.to(device), cfg.input).contiguous(memory_format=torch.channels_last)
        if border:
            logits, batch_shares = model_border_shares(model, x, cfg.input.size)
            shares.append(batch_shares)
        else:
            logits = model(x)
        out.append(torch.sigmoid(logits.float()).cpu())
    return torch.cat(out).numpy(), (np.concatenate(shares) if border else None)


def operating_point(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    pos, neg = y == 1, y == 0
    sens = float((p[pos] >= t).mean()) if pos.any() else float("nan")
    spec = float((p[neg] < t).mean()) if neg.any() else float("nan")
    return {"threshold": t, "sensitivity": sens, "specificity": spec}


def card_models(folder: str | Path) -> dict[str, Path]:
    """Model cards of ``folder`` by model name (teacher, student_plain, student), in that order."""
    cards = find_cards([Path(folder)])
    return {name: cards[name] for name in MODEL_NAMES if name in cards}


def _load(ws: Workspace, name: str, cards: dict[str, Path]) -> tuple[torch.nn.Module, object]:
    """The model and its input spec: from its card (SHA-256 verified) if ``cards`` has it, else
    from the run's ``best.pt``."""
    if name not in cards:
        model, run_cfg = load_trained(ws, name)
        return model, run_cfg.input
    model, card = load_model(cards[name])
    return model, card.input


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _comparisons(names: list[str], labels, probs: dict[str, np.ndarray], patients, boot: dict) -> dict:
    pairs = [*COMPARISONS, *((n, BASELINE + n) for n in names if not n.startswith(BASELINE))]
    return {
        f"{a}_vs_{b}": {"a": a, "b": b, **paired_bootstrap(labels, probs[a], probs[b], patients, **boot)}
        for a, b in pairs
        if a in probs and b in probs
    }


def evaluate(
    cfg: Config,
    ws: Workspace,
    splits: str | Path | None = None,
    data: PreparedData | None = None,
    models_dir: str | Path | None = None,
    baseline_dir: str | Path | None = None,
) -> dict:
    """Evaluate every trained model of ``ws`` (or every card in ``models_dir``, e.g. the shipped
    ``resources/models``), and the cards of ``baseline_dir`` as ``baseline_<name>``; return (and
    write to ``<workdir>/evaluation``) the metrics."""
    cards = card_models(models_dir) if models_dir is not None else {}
    names = list(cards) if models_dir is not None else trained_models(ws)
    if not names:
        where = (
            f"model cards in {models_dir}"
            if models_dir is not None
            else f"trained model (best.pt) under {ws.root}"
        )
        raise FileNotFoundError(f"no {where}")
    if baseline_dir is not None:
        base = {BASELINE + n: p for n, p in card_models(baseline_dir).items()}
        if not base:
            raise FileNotFoundError(f"no model cards in {baseline_dir}")
        cards, names = {**cards, **base}, [*names, *base]
    data = data or prepare_data(cfg, ws, DistInfo(), splits)
    split = (
        cfg.eval.split if cfg.eval.split != "auto" else ("test" if (data.splits == "test").any() else "val")
    )
    out_dir = ws.evaluation
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    rows = data.rows(split)
    labels = data.table.labels[rows]
    patients = np.asarray(data.table.patients)[rows]
    val_labels = data.table.labels[data.rows("val")]
    val_patients = np.asarray(data.table.patients)[data.rows("val")]
    seed = derived_seed(cfg.seed, 5)
    boot = dict(
        resamples=cfg.eval.bootstrap, seed=seed, unit=cfg.eval.bootstrap_unit, confidence=cfg.eval.confidence
    )
    metrics: dict = {
        "split": split,
        "images": int(len(rows)),
        "patients": int(len(set(patients))),
        "threshold_rule": THRESHOLD_RULE,
        "bootstrap": boot,
        "optimistic": split == "val",
        "models": {},
        "comparisons": {},
    }
    probs: dict[str, np.ndarray] = {}
    val_probs: dict[str, np.ndarray] = {}
    borders: dict[str, dict] = {}
    for name in names:
        model, spec = _load(ws, name, cards)
        if spec != cfg.input:
            raise ValueError(f"{name} was trained with input {spec}, evaluation config has {cfg.input}")
        val_probs[name], shares = predict_probs(model, data, "val", cfg, device, border=True)
        borders[name] = {**border_report(shares, cfg.input.size), "arch": model.arch}
        probs[name] = val_probs[name] if split == "val" else predict_probs(model, data, split, cfg, device)[0]
    if cfg.eval.ensemble and len(names) > 1:
        members = [n for n in names if not n.startswith(BASELINE)]
        for where in (probs, val_probs):
            where["ensemble"] = 1 / (1 + np.exp(-np.mean([_logit(where[n]) for n in members], axis=0)))
        metrics["ensemble"] = {"members": members, "rule": "mean of the members' logits"}
    for name, p_eval in probs.items():
        p_val = val_probs[name]
        thresholds = {k: youden_threshold(val_labels[:, j], p_val[:, j]) for j, k in enumerate(FINDING_KEYS)}
        report = auc_report(labels, p_eval, patients, **boot)
        report["thresholds"] = thresholds
        report["operating_points"] = {
            k: operating_point(labels[:, j], p_eval[:, j], thresholds[k]) for j, k in enumerate(FINDING_KEYS)
        }
        if name in borders:
            report["arch"] = borders[name].pop("arch")
            report["heatmap_border"] = {"split": "val", **borders[name]}
        metrics["models"][name] = report
        log.info(
            "%s on %s: mean AUC %.4f [%.4f, %.4f]",
            name,
            split,
            report["mean_auc"],
            *report.get("mean_auc_ci", [float("nan")] * 2),
        )
    metrics["comparisons"] = _comparisons(names, labels, probs, patients, boot)
    if split != "val":  # the split that chose the epochs and thresholds, beside the one that chose nothing
        metrics["val"] = {
            "images": int(len(val_labels)),
            "patients": int(len(set(val_patients))),
            "models": {n: auc_report(val_labels, p, val_patients, **boot) for n, p in val_probs.items()},
            "comparisons": _comparisons(names, val_labels, val_probs, val_patients, boot),
        }
    write_json(out_dir / "metrics.json", metrics)
    (out_dir / "summary.md").write_text(summary_markdown(metrics), encoding="utf-8")
    np.savez_compressed(
        out_dir / "predictions.npz",
        labels=labels,
        patients=patients.astype(str),
        keys=np.asarray(data.table.keys)[rows].astype(str),
        **probs,
    )
    plot_roc(labels, probs, metrics["models"], out_dir / "roc.png", f"ROC on the {split} split")
    return metrics


def _fmt_ci(v: float, ci: list | None) -> str:
    if ci is None:
        return f"{v:.3f}"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _auc_table(models: dict) -> list[str]:
    names = list(models)
    lines = ["| finding | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k, label in zip(FINDING_KEYS, FINDING_NAMES, strict=True):
        cells = [_fmt_ci(models[n]["findings"][k]["auc"], models[n]["findings"][k].get("ci")) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean** | "
        + " | ".join(_fmt_ci(models[n]["mean_auc"], models[n].get("mean_auc_ci")) for n in names)
        + " |"
    )
    return lines


def _comparison_table(comparisons: dict) -> list[str]:
    if not comparisons:
        return []
    lines = [
        "",
        "Paired bootstrap, difference of mean AUC (A − B):",
        "",
        "| A vs B | difference | CI | fraction of resamples ≤ 0 |",
        "|---|---|---|---|",
    ]
    for c in comparisons.values():
        lines.append(
            f"| {c['a']} vs {c['b']} | {c['difference']:+.4f} | [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] "
            f"| {c['p_le_0']:.3f} |"
        )
    return lines


def _border_table(models: dict) -> list[str]:
    names = [n for n in models if "heatmap_border" in models[n]]
    if not names:
        return []
    first = models[names[0]]["heatmap_border"]
    lines = [
        "",
        f"Heat maps: share of the class activation map's mass in the outer {first['fraction']:.0%} of each "
        f"side, on the {first['split']} split ({first['images']} images; a flat map scores "
        f"{first['flat_map']:.3f}, lower is better):",
        "",
        "| finding | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def cell(v):
        return "–" if v is None else f"{v:.3f}"

    for k, label in zip(FINDING_KEYS, FINDING_NAMES, strict=True):
        lines.append(
            f"| {label} | "
            + " | ".join(cell(models[n]["heatmap_border"]["findings"][k]) for n in names)
            + " |"
        )
    lines.append(
        "| **mean** | " + " | ".join(cell(models[n]["heatmap_border"]["mean"]) for n in names) + " |"
    )
    return lines


def summary_markdown(m: dict) -> str:
    """A markdown report of ``metrics.json``."""
    lines = [f"# Evaluation on the {m['split']} split ({m['images']} images, {m['patients']} patients)", ""]
    if m["optimistic"]:
        lines += [
            "> No test split: these are validation-split figures, which also chose the best epoch and "
            "the thresholds, so they are optimistic.",
            "",
        ]
    b = m["bootstrap"]
    lines += [
        f"ROC-AUC with {int(b['confidence'] * 100)}% percentile bootstrap CIs ({b['resamples']} resamples "
        f"by {b['unit']}, seed {b['seed']}).",
        "",
        *_auc_table(m["models"]),
    ]
    if "ensemble" in m:
        lines += ["", f"ensemble: {m['ensemble']['rule']} ({', '.join(m['ensemble']['members'])})."]
    names = list(m["models"])
    lines += ["", f"Thresholds: {m['threshold_rule']}.", ""]
    lines.append("| finding | " + " | ".join(f"{n} threshold (sens/spec)" for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for k, label in zip(FINDING_KEYS, FINDING_NAMES, strict=True):
        cells = []
        for n in names:
            op = m["models"][n]["operating_points"][k]
            cells.append(f"{op['threshold']:.3f} ({op['sensitivity']:.2f}/{op['specificity']:.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _comparison_table(m["comparisons"])
    lines += _border_table(m["models"])
    if "val" in m:
        v = m["val"]
        lines += [
            "",
            f"## The val split ({v['images']} images, {v['patients']} patients; it chose the epochs and "
            "thresholds, so these are optimistic)",
            "",
            *_auc_table(v["models"]),
            *_comparison_table(v["comparisons"]),
        ]
    return "\n".join(lines) + "\n"
