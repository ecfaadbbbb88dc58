"""Fitting and measuring the scope check (:mod:`kdviewer.core.scope`) for a model card.

``kdviewer-train scope --models DIR --data-root NIH`` scores the ``train`` split with the card's
own engine (ONNX Runtime, CPU), fits the two Mahalanobis distances (PCA, then a Ledoit-Wolf
shrunk covariance), picks one quantile of the ``val`` distances as both thresholds, the smallest
that still accepts at least :data:`ACCEPT` of val, writes the parameters beside the card
(``<name>.scope.safetensors``) and records method, thresholds and figures in the card. Weights,
metrics and self-test reference are left as they are.

``kdviewer-train evaluate --models DIR --ood-dir DIR`` (:func:`evaluate_scope`) reports the
acceptance on val/test and the rejection per kind of out-of-scope images: each sub-folder of
``--ood-dir`` is a kind; the synthetic kinds (rotations, crops, inversion, noise, blank) are
made from val images.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from safetensors.numpy import save
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from kdviewer.core.engine import InferenceEngine
from kdviewer.core.errors import ImageReadError
from kdviewer.core.image import LoadedImage
from kdviewer.core.imageio import iter_image_files, read_image
from kdviewer.core.modelcard import ModelCard, find_cards
from kdviewer.core.resources import resources_dir
from kdviewer.core.scope import SCOPE_FORMAT, ScopeModel, check, layout_vector, load_scope

log = logging.getLogger(__name__)

ACCEPT = 0.98  # the bar: accept at least 98 % of the val images
FEATURE_COMPONENTS = 64
LAYOUT_COMPONENTS = 32
SYNTHETIC_IMAGES = 100  # val images per synthetic kind (the first ones, in file order)


def method(components: tuple[int, int]) -> str:
    """The card's description of the method."""
    return (
        "Mahalanobis distances in PCA subspaces with Ledoit-Wolf shrinkage, fitted on the train split: "
        f"(1) the student's pooled features ({components[0]} components), (2) a standardised "
        f"16x16 grey layout thumbnail ({components[1]} components); out of scope when either "
        "exceeds its threshold (one val quantile for both), plus DICOM header rules"
    )


def split_images(data_root: str | Path, split: str) -> list[Path]:
    """The images of one split of an NIH-format folder (``labels.csv`` with ``image`` and ``split``)."""
    root = Path(data_root)
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        return [root / r["image"] for r in csv.DictReader(f) if r.get("split") == split]


def _measure(engine: InferenceEngine, image: LoadedImage) -> tuple[np.ndarray, np.ndarray | None]:
    pred = engine.predict(image, heatmaps=False, measure_energy=False)
    return np.asarray(pred.features, dtype=np.float64), layout_vector(image.pixels, image.value_range)


def measure_images(engine: InferenceEngine, images: Iterable[LoadedImage]) -> tuple[np.ndarray, list]:
    """Pooled features (N, K) and layout vectors (None for blank images) of loaded images."""
    feats, layouts = [], []
    for image in images:
        f, lay = _measure(engine, image)
        feats.append(f)
        layouts.append(lay)
    return np.stack(feats), layouts


def _read_all(paths: Iterable[Path], side: int) -> Iterable[LoadedImage]:
    for p in paths:
        yield read_image(p, reduce_to=side)


def _mahalanobis(x: np.ndarray, components: int) -> dict[str, np.ndarray]:
    """PCA then Ledoit-Wolf on the scores, folded into (mean, projection, center) for
    :class:`kdviewer.core.scope.ScopeModel`: ``‖(x − mean)·P − c‖`` is the Mahalanobis distance."""
    mean = x.mean(axis=0)
    pca = PCA(n_components=components, random_state=0).fit(x - mean)
    lw = LedoitWolf().fit(pca.transform(x - mean))
    chol = np.linalg.cholesky(lw.precision_)
    return {"mean": mean, "projection": pca.components_.T @ chol, "center": lw.location_ @ chol}


def _thresholds(
    model: ScopeModel, feats: np.ndarray, layouts: list, accept: float
) -> tuple[ScopeModel, float]:
    """``model`` with both thresholds at the same val quantile q, the smallest q whose acceptance
    (measured by the verdicts themselves, so rounding cannot tip an image over) is at least
    ``accept``; returns it and q."""
    d = [model.distances(f, lay) for f, lay in zip(feats, layouts, strict=True)]
    fd = np.array([x["features"] for x in d])
    ld = np.array([x["layout"] for x in d])
    ld = ld[np.isfinite(ld)]
    for q in np.arange(accept, 1.0 + 1e-9, 0.0005):
        q = min(float(q), 1.0)
        th = {"features": float(np.quantile(fd, q)), "layout": float(np.quantile(ld, q))}
        candidate = ScopeModel.from_arrays(model.arrays(), th)
        if _acceptance(candidate, feats, layouts) >= accept:
            return candidate, q
    # every val image at or under both maxima: only blank images (never accepted) can fall short
    return ScopeModel.from_arrays(
        model.arrays(), {"features": float(fd.max()) * (1 + 1e-6), "layout": float(ld.max()) * (1 + 1e-6)}
    ), 1.0


def fit_scope(
    card_path: str | Path,
    data_root: str | Path,
    *,
    accept: float = ACCEPT,
    components: tuple[int, int] = (FEATURE_COMPONENTS, LAYOUT_COMPONENTS),
) -> dict:
    """Fit the scope check of the card at ``card_path`` on ``data_root``'s train split, choose its
    thresholds on val, write ``<name>.scope.safetensors`` and the card's ``scope`` section.
    ``components``: PCA components of the feature and layout distances."""
    card_path = Path(card_path)
    engine = InferenceEngine.from_card(card_path)
    t0 = time.perf_counter()
    side = engine.card.input.read_min_side
    train_f, train_l = measure_images(engine, _read_all(split_images(data_root, "train"), side))
    val_f, val_l = measure_images(engine, _read_all(split_images(data_root, "val"), side))
    t1 = time.perf_counter()
    keep = [i for i, lay in enumerate(train_l) if lay is not None]
    arrays = {}
    for part, x, k in (
        ("features", train_f, components[0]),
        ("layout", np.stack([train_l[i] for i in keep]), components[1]),
    ):
        arrays.update({f"{part}.{name}": a for name, a in _mahalanobis(x, k).items()})
    ones = {"features": 1.0, "layout": 1.0}
    stored = ScopeModel.from_arrays(ScopeModel.from_arrays(arrays, ones).arrays(), ones)  # float32, as loaded
    model, q = _thresholds(stored, val_f, val_l, accept)
    thresholds = model.thresholds
    t2 = time.perf_counter()
    blob = save(model.arrays(), metadata={"format": str(SCOPE_FORMAT), "card": engine.name})
    out = card_path.parent / f"{engine.name}.scope.safetensors"
    out.write_bytes(blob)
    accepted = {
        s: round(_acceptance(model, f, lay), 4)
        for s, f, lay in (("train", train_f, train_l), ("val", val_f, val_l))
    }
    section = {
        "method": method(components),
        "format": SCOPE_FORMAT,
        "file": out.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "threshold": 1.0,
        "thresholds": thresholds,
        "val_quantile": round(q, 4),
        "fitted_on": {"split": "train", "images": len(train_f), "data_root_name": Path(data_root).name},
        "acceptance": accepted,
        "timings_s": {"features": round(t1 - t0, 1), "fit": round(t2 - t1, 2)},
    }
    _write_scope_section(card_path, section)
    log.info(
        "%s: scope check fitted (%d train images, features %.0f s, fit %.1f s): %s",
        engine.name,
        len(train_f),
        t1 - t0,
        t2 - t1,
        json.dumps(accepted),
    )
    return section


def _acceptance(model: ScopeModel, feats: np.ndarray, layouts: list) -> float:
    return float(np.mean([model.verdict(f, lay).in_scope for f, lay in zip(feats, layouts, strict=True)]))


def _write_scope_section(card_path: Path, section: dict) -> None:
    """Set the card's ``scope`` section, leaving every other field as it was; the result is
    validated before it is written."""
    d = json.loads(card_path.read_text(encoding="utf-8"))
    d["scope"] = section
    ModelCard.from_dict(d)  # fails here, not at the next start, if the section is off
    card_path.write_text(json.dumps(d, indent=2, allow_nan=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- evaluation


def _rot90(p: np.ndarray) -> np.ndarray:
    return np.rot90(p)


def _center_crop(p: np.ndarray) -> np.ndarray:
    h, w = p.shape
    return p[int(h * 0.35) : int(h * 0.65), int(w * 0.35) : int(w * 0.65)]


def synthetic_kinds(seed: int = 0) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Out-of-scope transforms of a val image's pixels, by kind."""
    rng = np.random.default_rng(seed)

    def noise(p):
        lo, hi = float(p.min()), float(p.max())
        return np.clip(p + rng.normal(0.0, 0.5 * (hi - lo), p.shape), lo, hi)

    return {
        "rotated 90": _rot90,
        "rotated 180": lambda p: np.rot90(p, 2),
        "inverted": lambda p: p.max() + p.min() - p,
        "central crop (30%)": _center_crop,
        "heavy noise": noise,
        "blank": lambda p: np.full_like(p, float(p.mean())),
    }


def _transformed(image: LoadedImage, f) -> LoadedImage:
    px = np.ascontiguousarray(f(image.pixels), dtype=np.float32)
    meta = dataclasses.replace(image.metadata, rows=px.shape[0], cols=px.shape[1])
    return dataclasses.replace(
        image, pixels=px, metadata=meta, value_range=(float(px.min()), float(px.max()))
    )


def _verdicts(engine, model, images: Iterable[LoadedImage]) -> list[tuple]:
    """(full verdict, pixels-only verdict) per image: the second is what the check says once the
    header is gone (a DICOM converted to PNG)."""
    out = []
    for im in images:
        f = engine.predict(im, heatmaps=False, measure_energy=False).features
        pixels = model.verdict(np.asarray(f), layout_vector(im.pixels, im.value_range)) if model else None
        out.append((check(im, f, model), pixels))
    return out


def _rate(verdicts: list[tuple], in_scope: bool) -> dict:
    n = len(verdicts)
    key = "accepted" if in_scope else "rejected"
    hits = sum(v.in_scope == in_scope for v, _ in verdicts)
    reasons: dict[str, int] = {}
    for v, _ in verdicts:
        if not v.in_scope:
            reasons[v.reason] = reasons.get(v.reason, 0) + 1
    entry = {
        "images": n,
        key: round(hits / n, 4) if n else None,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    }
    if n and all(p is not None for _, p in verdicts):
        entry[f"{key}_by_pixels_alone"] = round(sum(p.in_scope == in_scope for _, p in verdicts) / n, 4)
    return entry


def _ood_folder(folder: Path) -> dict[str, list[Path]]:
    """Kinds of an ``--ood-dir``: one per sub-folder (files directly inside: kind "other")."""
    kinds: dict[str, list[Path]] = {}
    for p in iter_image_files([folder]):
        p = Path(p)
        rel = p.relative_to(folder)
        kinds.setdefault(rel.parts[0] if len(rel.parts) > 1 else "other", []).append(p)
    return kinds


def evaluate_scope(
    card_path: str | Path,
    data_root: str | Path | None,
    ood_dir: str | Path | None = None,
    *,
    synthetic: int = SYNTHETIC_IMAGES,
) -> dict:
    """Acceptance on val (and test, where the labels have one) and rejection per out-of-scope kind."""
    card_path = Path(card_path)
    engine = InferenceEngine.from_card(card_path)
    model = load_scope(engine.card, card_path)
    result: dict = {
        "model": engine.name,
        "method": (engine.card.scope or {}).get("method"),
        "in_scope": {},
        "out_of_scope": {},
    }
    val_images: list[LoadedImage] = []
    if data_root is not None:
        for split in ("val", "test"):
            paths = split_images(data_root, split)
            if paths:
                images = list(_read_all(paths, engine.card.input.read_min_side))
                result["in_scope"][split] = _rate(_verdicts(engine, model, images), True)
                if split == "val":
                    val_images = images[:synthetic]
        for kind, f in synthetic_kinds().items():
            ims = [_transformed(im, f) for im in val_images]
            result["out_of_scope"][f"synthetic: {kind}"] = _rate(_verdicts(engine, model, ims), False)
    if ood_dir is not None:
        for kind, paths in sorted(_ood_folder(Path(ood_dir)).items()):
            images, unreadable = [], 0
            for p in paths:
                try:
                    images.append(read_image(p, reduce_to=engine.card.input.read_min_side))
                except ImageReadError:
                    unreadable += 1
            entry = _rate(_verdicts(engine, model, images), False)
            entry["unreadable"] = unreadable
            result["out_of_scope"][kind] = entry
    return result


def _student_card(models_dir: str | Path | None) -> Path:
    folder = Path(models_dir) if models_dir is not None else resources_dir() / "models"
    cards = find_cards([folder])
    if "student" not in cards:
        raise FileNotFoundError(
            f"no 'student' model card in {folder} (the scope check uses the student's features)"
        )
    return cards["student"]


def fit_scopes(
    models_dir: str | Path | None, data_root: str | Path | None, ood_dir: str | Path | None, **fit_options
) -> dict:
    """``kdviewer-train scope``: fit the student's scope check and, with the val synthetic kinds
    and ``ood_dir``, record the rejection per kind in its card (``scope.figures``)."""
    if not data_root:
        raise ValueError("kdviewer-train scope needs --data-root (the train and val splits)")
    card = _student_card(models_dir)
    section = fit_scope(card, data_root, **fit_options)
    figures = evaluate_scope(card, data_root, ood_dir)
    section["figures"] = {"in_scope": figures["in_scope"], "out_of_scope": figures["out_of_scope"]}
    _write_scope_section(card, section)
    return section


def evaluate_scopes(
    models_dir: str | Path | None, data_root: str | Path | None, ood_dir: str | Path | None, out: Path
) -> dict:
    """``kdviewer-train evaluate --ood-dir``: the student's scope figures, logged and written to ``out``."""
    result = evaluate_scope(_student_card(models_dir), data_root or None, ood_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for group in ("in_scope", "out_of_scope"):
        for kind, e in result[group].items():
            rate = e.get("accepted", e.get("rejected"))
            log.info("scope %s %s: %s of %d (%s)", group, kind, rate, e["images"], ", ".join(e["reasons"]))
    return result
