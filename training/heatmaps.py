"""Heat-map sanity: how much of a model's class activation map lies on the image's border.

A network that learnt a shortcut from few images (a marker, a collimation edge, the rim of the
film) puts its evidence at the edges rather than in the chest. For each image and finding the
map is made exactly as the viewer makes it (:mod:`kdviewer.core.explain`: the class activation
map of the head's weights over the post-activation feature map, min-max normalised after bilinear
upsampling to the input size); its **border share** is the fraction of its mass in the outer band
of ``fraction`` of each side (10 % by default). A flat map scores ``1 − (1 − 2·fraction)²``
(0.36 at 10 %); lower means the evidence sits inside the image. Maps that are zero everywhere
(no positive evidence for the finding) have no share and are left out of the mean.
"""

from __future__ import annotations

import numpy as np

from kdviewer.core.explain import cam_weights, class_activation_maps, upsample_normalized
from kdviewer.core.findings import FINDING_KEYS

BORDER_FRACTION = 0.1


def border_mask(size: int, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """(size, size) bool: True within ``round(fraction·size)`` pixels of any edge."""
    band = int(round(fraction * size))
    mask = np.ones((size, size), dtype=bool)
    mask[band : size - band, band : size - band] = False
    return mask


def flat_share(size: int, fraction: float = BORDER_FRACTION) -> float:
    """The border share of a constant map (the band's share of the pixels)."""
    return float(border_mask(size, fraction).mean())


def border_shares(features: np.ndarray, weights: np.ndarray, size: int, fraction: float = BORDER_FRACTION):
    """Border share (N, findings) of the heat maps of N images' feature maps (N, K, h, w) under
    head weights (findings, K); NaN where a map is zero everywhere."""
    mask = border_mask(size, fraction)
    out = np.full((features.shape[0], weights.shape[0]), np.nan)
    for i, feats in enumerate(np.asarray(features, dtype=np.float32)):
        maps = upsample_normalized(class_activation_maps(feats, weights), (size, size))
        total = maps.sum(axis=(1, 2), dtype=np.float64)
        band = maps[:, mask].sum(axis=1, dtype=np.float64)
        out[i] = np.where(total > 0, band / np.where(total > 0, total, 1.0), np.nan)
    return out


def model_border_shares(model, x, size: int, fraction: float = BORDER_FRACTION):
    """Logits (N, findings) and border shares (N, findings) of one batch of model input ``x``."""
    feats = model.forward_features(x)
    logits = model.forward_head(feats)
    shares = border_shares(feats.float().cpu().numpy(), cam_weights(model), size, fraction)
    return logits, shares


def border_report(shares: np.ndarray, size: int, fraction: float = BORDER_FRACTION) -> dict:
    """Mean border share per finding (over images with a non-zero map) and over findings."""
    per = {}
    for j, k in enumerate(FINDING_KEYS[: shares.shape[1]]):
        col = shares[:, j][~np.isnan(shares[:, j])]
        per[k] = float(col.mean()) if len(col) else None
    defined = [v for v in per.values() if v is not None]
    return {
        "fraction": fraction,
        "flat_map": flat_share(size, fraction),
        "images": int(shares.shape[0]),
        "findings": per,
        "mean": float(np.mean(defined)) if defined else None,
    }
