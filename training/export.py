"""The export stage: weights-only safetensors + model card for every trained model.

Cards go to ``resources/models/`` (where the viewer and ``kdviewer predict`` look) or to
``--out DIR`` (point ``KDVIEWER_MODELS`` at it). Each card carries the SHA-256 of its weights,
the findings, the input spec, the thresholds chosen on the validation split (Youden's J), the
resolved training config, a description of the data and splits, the evaluation metrics with
their bootstrap CIs and the paired comparisons, library versions, the git revision and, where the
engine provides it, the reference self-test scores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kdviewer.core.modelcard import ModelCard, save_model

from training.config import Config
from training.evaluate import evaluate, load_trained, trained_models
from training.runlog import clean_json, git_revision, versions
from training.workspace import Workspace

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "teacher": "DenseNet-121 teacher trained with masked, pos-weighted BCE.",
    "student": "MobileNetV2 student distilled from the DenseNet-121 teacher "
               "(alpha·BCE + (1−alpha)·T²·Bernoulli-KL of tempered sigmoids).",
    "student_plain": "MobileNetV2 trained without distillation (masked, pos-weighted BCE): the baseline.",
}


def default_out_dir() -> Path:
    """``resources/models`` of a checkout; for an installed kdviewer (whose bundled folder sits in
    site-packages, often read-only and replaced on upgrade) the user's models folder, which the
    viewer searches before the bundled one."""
    from kdviewer.core.resources import is_installed, resources_dir, user_models_dir

    return user_models_dir() if is_installed() else resources_dir() / "models"


def _with_reference(model, card: ModelCard) -> ModelCard:
    """The card with the engine's self-test scores on its reference input (what the viewer re-checks)."""
    from kdviewer.core.engine import with_reference

    return with_reference(model, card)


def export_models(cfg: Config, ws: Workspace, out: str | Path | None = None,
                  splits: str | Path | None = None) -> dict[str, Path]:
    """Export every trained model of ``ws``; return card paths by model name."""
    out_dir = Path(out or cfg.export.out or default_out_dir())
    metrics_path = ws.evaluation / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    names = trained_models(ws)
    if metrics is None or set(names) - set(metrics["models"]):
        metrics = clean_json(evaluate(cfg, ws, splits))
    rev, vers = git_revision(), versions()
    cards: dict[str, Path] = {}
    for name in names:
        model, run_cfg = load_trained(ws, name)
        run = ws.model_dir(name)
        m = metrics["models"][name]
        result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
        data_desc = json.loads((run / "data.json").read_text()) if (run / "data.json").is_file() else {}
        comparisons = {k: v for k, v in metrics["comparisons"].items() if name in (v["a"], v["b"])}
        card = ModelCard(
            name=name, architecture=model.arch, weights_file=f"{name}.safetensors", weights_sha256="",
            input=run_cfg.input, thresholds={k: float(v) for k, v in m["thresholds"].items()}, trained=True,
            description=DESCRIPTIONS[name], version=cfg.export.version,
            training={"config": run_cfg.to_dict(), "data": data_desc, "result": result,
                      "threshold_rule": metrics["threshold_rule"],
                      **({"note": cfg.export.note} if cfg.export.note else {})},
            metrics={"split": metrics["split"], "optimistic": metrics["optimistic"], "images": metrics["images"],
                     "patients": metrics["patients"], "bootstrap": metrics["bootstrap"],
                     "mean_auc": m["mean_auc"], "mean_auc_ci": m.get("mean_auc_ci"), "findings": m["findings"],
                     "operating_points": m["operating_points"], "comparisons": comparisons},
            versions=vers, git_revision=rev,
        )
        card = _with_reference(model, card)
        path, card = save_model(model, card, out_dir)
        cards[name] = path
        log.info("exported %s (%s…) to %s", name, card.short_hash, path)
    return cards
