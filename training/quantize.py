"""The quantize stage: an int8 ONNX graph beside a model's float32 one, judged on val before it ships.

``kdviewer-train quantize --models DIR --data-root DIR`` takes each card's verified float32 graph and
runs ONNX Runtime's static quantization on it: QDQ format, int8 weights per output channel, uint8
activations with MinMax ranges calibrated on :data:`CALIBRATION_IMAGES` seeded ``train`` images
that went through the one preprocessing path (the training dataset's, ``kdviewer.core.preprocess``).
Both graphs then score every ``val`` image; the card records the int8 graph (file, SHA-256, its own
self-test scores on the reference input) with the comparison: mean and per-finding AUC of each
precision, the paired bootstrap CI of the int8 − float32 mean-AUC difference, and the largest
per-image score change. The int8 graph becomes the card's default only when the mean AUC moves by
less than :data:`MAX_MEAN_AUC_CHANGE`; otherwise the card keeps float32 and says why.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from kdviewer.core.engine import REFERENCE_INPUT, reference_image
from kdviewer.core.modelcard import find_cards, read_card, verified_graph
from kdviewer.core.preprocess import image_to_model_input, normalize

# kdviewer.core.runtime turns ONNX Runtime's telemetry off before onnxruntime.quantization is imported
from kdviewer.core.runtime import OnnxRuntime
from training.config import Config
from training.data import prepare_data
from training.distributed import DistInfo
from training.export import write_card_fields
from training.images import GreyImages
from training.metrics import mean_auc, paired_bootstrap
from training.workspace import Workspace

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 300
MAX_MEAN_AUC_CHANGE = 0.005  # int8 ships as the default only below this change of the val mean AUC
# 7-bit weights: x86 cores without VNNI (AVX2, AVX-512 before VNNI) multiply uint8 × int8 with
# VPMADDUBSW, whose 16-bit pair sums saturate. With full 8-bit weights the student's val mean AUC fell
# from 0.739 to 0.631 on this project's AVX2 machine (int8 activations too: 0.634); with 7-bit weights
# it is 0.737.
REDUCE_RANGE = True
METHOD = (
    "ONNX Runtime static quantization: QDQ, int8 weights per output channel (7-bit range), uint8 "
    "activations, MinMax calibration"
)


def model_inputs(data, rows: np.ndarray, cfg: Config) -> np.ndarray:
    """Model inputs ``(N, C, S, S)`` float32 for table ``rows``, through the training dataset (the
    one preprocessing path, no augmentation) and the card's normalisation."""
    ds = GreyImages(rows, data.table.labels, data.array, data.table.files, cfg.input)
    grey, _y, _i = ds.__getitems__(list(range(len(ds))))
    return np.ascontiguousarray(normalize(grey, cfg.input).numpy(), dtype=np.float32)


def quantize_graph(fp32: bytes, calibration: np.ndarray) -> bytes:
    """The int8 QDQ graph of the float32 graph ``fp32``, calibrated on ``calibration`` (N, C, S, S)."""
    # Imported here: only after kdviewer.core.runtime has turned ONNX Runtime's telemetry off (at
    # the top, import sorting would put it before that import).
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calibration)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x[None]}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre))  # shape inference and fusions the quantizer relies on
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=REDUCE_RANGE,
        )
        return out.read_bytes()


def graph_probs(graph: bytes, x: np.ndarray) -> np.ndarray:
    """Sigmoid scores ``(N, findings)`` of ``graph`` (run by the engine's runtime) on inputs ``x``."""
    session = OnnxRuntime.from_graph(graph, "<graph>")
    logits = np.stack([session.run(xi[None])[0] for xi in x]).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-logits))


def compare_precisions(
    labels: np.ndarray,
    patients: np.ndarray,
    p32: np.ndarray,
    p8: np.ndarray,
    findings: tuple[str, ...],
    resamples: int = 1000,
    seed: int = 0,
    unit: str = "patient",
) -> dict:
    """int8 against float32 on the same images: mean and per-finding AUC of each, the paired bootstrap
    CI of the int8 − float32 mean-AUC difference (resampled by patient), the largest score changes."""
    m32, per32 = mean_auc(labels, p32)
    m8, per8 = mean_auc(labels, p8)
    paired = paired_bootstrap(labels, p8, p32, patients, resamples=resamples, seed=seed, unit=unit)
    change = np.abs(p8 - p32)
    return {
        "images": int(len(labels)),
        "mean_auc_float32": m32,
        "mean_auc_int8": m8,
        "mean_auc_difference": m8 - m32,
        "difference_ci": paired["ci"],
        "bootstrap": {"resamples": resamples, "unit": unit, "seed": seed},
        "findings": {
            k: {"auc_float32": float(a), "auc_int8": float(b), "largest_score_change": float(c)}
            for k, a, b, c in zip(findings, per32, per8, change.max(axis=0), strict=True)
        },
        "largest_score_change": float(change.max()),
        "mean_score_change": float(change.mean()),
    }


def quantize_models(
    cfg: Config,
    ws: Workspace,
    models_dir: str | Path | None = None,
    names: tuple[str, ...] = ("student",),
    splits: str | Path | None = None,
    images: int = CALIBRATION_IMAGES,
) -> dict[str, dict]:
    """Quantize the cards ``names`` in ``models_dir`` (default: where the viewer looks), write
    ``<weights stem>.int8.onnx`` beside each and its ``int8`` section into the card; return the
    sections by model name."""
    cards = find_cards([Path(models_dir)] if models_dir else None)
    data = prepare_data(cfg, ws, DistInfo(), splits)
    rng = np.random.default_rng(cfg.seed)
    train = data.rows("train")
    calib_rows = np.sort(rng.choice(train, size=min(images, len(train)), replace=False))
    val = data.rows("val")
    labels, patients = data.table.labels[val], np.asarray(data.table.patients)[val]
    calibration = model_inputs(data, calib_rows, cfg)
    x_val = model_inputs(data, val, cfg)
    out: dict[str, dict] = {}
    for name in names:
        card_path = cards[name]
        card = read_card(card_path)
        fp32 = verified_graph(card, card_path)
        if fp32 is None:
            raise ValueError(
                f"{card_path}: the card has no float32 ONNX graph to quantize "
                "(run kdviewer-train graphs first)"
            )
        int8 = quantize_graph(fp32, calibration)
        comparison = compare_precisions(
            labels,
            patients,
            graph_probs(fp32, x_val),
            graph_probs(int8, x_val),
            card.findings,
            resamples=cfg.eval.bootstrap,
            seed=cfg.seed,
            unit=cfg.eval.bootstrap_unit,
        )
        ref_x = image_to_model_input(reference_image(tuple(REFERENCE_INPUT["shape"])), card.input)[None]
        ref = graph_probs(int8, ref_x)[0]
        change = abs(comparison["mean_auc_difference"])
        default = bool(change < MAX_MEAN_AUC_CHANGE)
        reason = (
            f"val mean AUC changed by {change:.4f} (< {MAX_MEAN_AUC_CHANGE}): int8 is the default"
            if default
            else f"val mean AUC changed by {change:.4f} (>= {MAX_MEAN_AUC_CHANGE}): float32 stays the default"
        )
        file = f"{Path(card.weights_file).stem}.int8.onnx"
        (Path(card_path).parent / file).write_bytes(int8)
        section = {
            "file": file,
            "sha256": hashlib.sha256(int8).hexdigest(),
            "default": default,
            "decision": reason,
            "method": METHOD,
            "calibration": {"split": "train", "images": int(len(calib_rows)), "seed": cfg.seed},
            "reference_scores": {k: float(s) for k, s in zip(card.findings, ref, strict=True)},
            "val": comparison,
        }
        write_card_fields(Path(card_path), int8=section)
        log.info("%s: int8 graph %s; %s", name, file, reason)
        out[name] = section
    return out
