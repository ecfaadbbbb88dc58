"""The export stage: weights-only safetensors + model card for every trained model.

Cards go to ``resources/models/`` (where the viewer and ``kdviewer predict`` look) or to
``--out DIR`` (point ``KDVIEWER_MODELS`` at it). Each card carries the SHA-256 of its weights,
the findings, the input spec, the thresholds chosen on the validation split (Youden's J), the
resolved training config, a description of the data and splits, the evaluation metrics with
their bootstrap CIs and the paired comparisons, library versions, the git revision and, where the
engine provides it, the reference self-test scores. Beside the weights goes the model's ONNX
graph (:func:`export_graph`: checked against the PyTorch model within :data:`GRAPH_TOLERANCE` and
recorded in the card with its SHA-256), which the viewer runs without PyTorch;
``kdviewer-train graphs --models DIR`` (:func:`export_graphs`) adds or renews the graphs of cards
that exist, changing no other field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from kdviewer.core.engine import reference_image, with_reference
from kdviewer.core.modelcard import ModelCard, find_cards, load_model, read_card, save_model
from kdviewer.core.preprocess import image_to_model_input
from kdviewer.core.resources import is_installed, resources_dir, user_models_dir
from kdviewer.core.runtime import OnnxRuntime, export_onnx
from training.config import Config
from training.evaluate import evaluate, load_trained, trained_models
from training.runlog import clean_json, git_revision, versions
from training.workspace import STAGES, Workspace

log = logging.getLogger(__name__)

GRAPH_TOLERANCE = 1e-4  # largest difference of the graph's logits from PyTorch's
# ... and of its feature maps, relative to their largest value: float32 sums in another order
# differ by up to 5e-4 of it in an untrained network (2e-6 in the shipped ones); heat maps are
# min-max normalised, so this is invisible in them.
FEATURE_TOLERANCE = 1e-3

STAGES_BY_MODEL = {s.model_name: s.role for s in STAGES.values()}  # which config section trained it

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
    return user_models_dir() if is_installed() else resources_dir() / "models"


def export_models(
    cfg: Config, ws: Workspace, out: str | Path | None = None, splits: str | Path | None = None
) -> dict[str, Path]:
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
            name=name,
            architecture=model.arch,
            weights_file=f"{name}.safetensors",
            weights_sha256="",
            input=run_cfg.input,
            thresholds={k: float(v) for k, v in m["thresholds"].items()},
            trained=True,
            description=DESCRIPTIONS[name],
            version=cfg.export.version,
            training={
                "config": run_cfg.to_dict(),
                "data": data_desc,
                "result": result,
                # what the weights started from: none, imagenet or a file, with its SHA-256
                "init": result.get("init") or {"init": getattr(run_cfg, STAGES_BY_MODEL[name]).init},
                "threshold_rule": metrics["threshold_rule"],
                **({"note": cfg.export.note} if cfg.export.note else {}),
            },
            metrics={
                "split": metrics["split"],
                "optimistic": metrics["optimistic"],
                "images": metrics["images"],
                "patients": metrics["patients"],
                "bootstrap": metrics["bootstrap"],
                "mean_auc": m["mean_auc"],
                "mean_auc_ci": m.get("mean_auc_ci"),
                "findings": m["findings"],
                "operating_points": m["operating_points"],
                "comparisons": comparisons,
                **({"heatmap_border": m["heatmap_border"]} if "heatmap_border" in m else {}),
            },
            versions=vers,
            git_revision=rev,
        )
        card = with_reference(model, card)  # the engine's self-test scores, which the viewer re-checks
        path, card = save_model(model, card, out_dir)
        card = export_graph(model, path)
        cards[name] = path
        log.info("exported %s (%s…) to %s", name, card.short_hash, path)
    return cards


def graph_deviation(model, graph: bytes, card: ModelCard) -> tuple[float, float]:
    """Largest differences between the ONNX graph's outputs and the PyTorch model's, on the
    self-test's reference input and on two seeded random inputs: of the logits, and of the
    feature maps relative to their largest value."""
    session = OnnxRuntime.from_graph(graph, card.onnx_file or "<graph>")
    size, channels = card.input.size, card.input.channels
    rng = np.random.default_rng(0)
    inputs = [
        image_to_model_input(reference_image(), card.input)[None],
        *(rng.standard_normal((1, channels, size, size)).astype(np.float32) for _ in range(2)),
    ]
    model.eval()
    worst_logits = worst_feats = 0.0
    for x in inputs:
        with torch.inference_mode():
            feats = model.forward_features(torch.from_numpy(x))
            logits = model.forward_head(feats).numpy()[0]
            feats = feats.numpy()[0]
        got_logits, got_feats = session.run(x)
        worst_logits = max(worst_logits, float(np.abs(got_logits - logits).max()))
        scale = max(1.0, float(np.abs(feats).max()))
        worst_feats = max(worst_feats, float(np.abs(got_feats - feats).max()) / scale)
    return worst_logits, worst_feats


def _write_card_json(card_path: Path, data: dict) -> None:
    """Write a card's JSON atomically, then read it back through the validator."""
    fd, tmp = tempfile.mkstemp(suffix=".json.tmp", dir=card_path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.chmod(tmp, 0o644)  # as save_model writes it, not mkstemp's private mode
    os.replace(tmp, card_path)
    read_card(card_path)


def write_card_fields(card_path: Path, **fields) -> None:
    """Set ``fields`` in the card's JSON after ``weights_sha256``, leaving every other field and
    its formatting as it is; written atomically, then read back through the validator."""
    data = json.loads(card_path.read_text(encoding="utf-8"))
    out = {}
    for key, value in data.items():
        if key not in fields:
            out[key] = value
        if key == "weights_sha256":
            out.update(fields)
    _write_card_json(card_path, out)


def write_card_metrics(card_path: Path, **entries) -> None:
    """Set ``entries`` in the card's ``metrics`` section (read just before, so that another
    writer's fields are kept), every other field left as it is; written atomically."""
    data = json.loads(Path(card_path).read_text(encoding="utf-8"))
    data["metrics"] = {**data.get("metrics", {}), **clean_json(entries)}
    _write_card_json(Path(card_path), data)


def export_graph(model, card_path: str | Path) -> ModelCard:
    """Export ``model`` (the weights of the card at ``card_path``) as ``<weights stem>.onnx``
    beside the card, check it against the PyTorch model (:func:`graph_deviation` at most
    :data:`GRAPH_TOLERANCE` for the logits and :data:`FEATURE_TOLERANCE` for the feature maps,
    else ValueError and no graph) and record its file name and SHA-256 in the card; return the
    updated card."""
    card_path = Path(card_path)
    card = read_card(card_path)
    name = f"{Path(card.weights_file).stem}.onnx"
    path = card_path.parent / name
    export_onnx(model, path, card.input.size, card.input.channels, sidecar=False)
    graph = path.read_bytes()
    logits, feats = graph_deviation(model, graph, card.with_updates(onnx_file=name))
    if not (logits <= GRAPH_TOLERANCE and feats <= FEATURE_TOLERANCE):  # NaN fails too
        path.unlink()
        raise ValueError(
            f"{path}: the exported graph differs from the PyTorch model by {logits:.2e} in the "
            f"logits (at most {GRAPH_TOLERANCE}) and {feats:.2e} in the feature maps "
            f"(at most {FEATURE_TOLERANCE})"
        )
    write_card_fields(card_path, onnx_file=name, onnx_sha256=hashlib.sha256(graph).hexdigest())
    log.info(
        "exported %s's ONNX graph to %s (largest difference from PyTorch: logits %.1e, features %.1e)",
        card.name,
        path,
        logits,
        feats,
    )
    return read_card(card_path)


def export_graphs(models_dir: str | Path | None = None) -> dict[str, Path]:
    """Add (or renew) the ONNX graph of every model card in ``models_dir`` (default: where
    :func:`export_models` writes): weights verified and loaded, graph exported and checked, card
    updated in its ONNX fields only. Returns card paths by model name."""
    folder = Path(models_dir or default_out_dir())
    cards = find_cards([folder])
    if not cards:
        raise FileNotFoundError(f"no model cards in {folder}")
    for _name, card_path in sorted(cards.items()):
        model, _ = load_model(card_path)
        export_graph(model, card_path)
    return cards
