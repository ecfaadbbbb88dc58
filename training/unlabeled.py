"""A distillation-only transfer set: images without labels that the distill stage adds to its
training images (``--unlabeled DIR`` / ``data.unlabeled``).

Any file the viewer's reader reads counts (DICOM, PNG, JPEG, found as the viewer's folder walk
finds them), decoded and resized by the same path as the labelled images. Every label is unknown,
so the masked BCE ignores them and only the distillation term learns from them.

The images that choose the epoch or report the figures must never be taught on, so a file is
refused (an error naming it) when it is a validation or test image: the same bytes, the same
decoded pixels, or the same picture at another size, bit depth, format or polarity. The last is
judged on 32 × 32 thumbnails of the decoded model-size images: an absolute Pearson correlation of
at least :data:`SAME_PICTURE` (the NIH image that ``../shared/data/dicom/nih_google_dx`` holds as a
1024-pixel DICOM scores 1.000 against its 256-pixel PNG in val; the other chest files there score
at most 0.891 against any val image: ``tests/training/test_teaching.py`` measures both).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from kdviewer.core.findings import NUM_FINDINGS
from kdviewer.core.hashing import sha256_file
from kdviewer.core.imageio import iter_image_files
from training.config import Config
from training.data import PreparedData
from training.images import GreyImages, build_image_array, load_grey
from training.workspace import Workspace

log = logging.getLogger(__name__)

HELD_OUT = ("val", "test")
SAME_PICTURE = 0.98  # |correlation| of 32 x 32 thumbnails above which two images are one picture
THUMB = 32


def thumbnails(images: np.ndarray) -> torch.Tensor:
    """(N, THUMB²) area-averaged thumbnails of (N, S, S) images, zero-mean and unit-norm each."""
    t = torch.from_numpy(np.array(images, dtype=np.float32))[:, None]  # a copy: the cache is read-only
    t = torch.nn.functional.adaptive_avg_pool2d(t, THUMB).flatten(1).double()
    t = t - t.mean(dim=1, keepdim=True)
    return t / t.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _pixel_hash(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.float32).tobytes()).hexdigest()


def same_picture_scores(images: np.ndarray, held_out: torch.Tensor) -> np.ndarray:
    """For each of ``images`` (N, S, S), the largest |correlation| of its thumbnail with the
    ``held_out`` thumbnails (:func:`thumbnails`); at least :data:`SAME_PICTURE` means one picture."""
    return (thumbnails(images) @ held_out.T).abs().max(dim=1).values.numpy()


def held_out_images(data: PreparedData, cfg: Config) -> tuple[set[str], torch.Tensor]:
    """SHA-256 of the files and of the decoded pixels of every validation and test image, and
    their thumbnails."""
    hashes, pixels = set(), []
    for split in HELD_OUT:
        for r in data.rows(split):
            f = data.table.files[r]
            image = data.array[r] if data.array is not None else load_grey(f, cfg.input)
            hashes |= {sha256_file(f), _pixel_hash(image)}
            pixels.append(np.asarray(image, dtype=np.float32))
    return hashes, thumbnails(np.stack(pixels))


def unlabeled_images(cfg: Config, ws: Workspace, data: PreparedData) -> GreyImages:
    """The images of ``cfg.data.unlabeled`` with unknown labels, decoded once (cached like the
    labelled images); ValueError if the folder has none or any of them is a val/test image."""
    folder = Path(cfg.data.unlabeled)
    if not folder.is_dir():
        raise FileNotFoundError(f"unlabelled image folder not found: {folder}")
    files = [str(f) for f in iter_image_files([folder])]
    if not files:
        raise ValueError(f"{folder}: no image files for the unlabelled transfer set")
    mode = "memory" if cfg.data.cache == "none" else cfg.data.cache
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else ws.cache
    array = build_image_array(files, cfg.input, mode, cache_dir, 0, False)
    hashes, held_thumbs = held_out_images(data, cfg)
    same_picture = same_picture_scores(array, held_thumbs) >= SAME_PICTURE
    clash = [
        f
        for i, f in enumerate(files)
        if sha256_file(f) in hashes or _pixel_hash(array[i]) in hashes or bool(same_picture[i])
    ]
    if clash:
        raise ValueError(
            f"{len(clash)} of the unlabelled images are validation or test images (same file, same "
            f"pixels or the same picture), e.g. {', '.join(clash[:3])}; remove them from {folder}"
        )
    log.info("unlabelled transfer set: %d images from %s (distillation term only)", len(files), folder)
    labels = np.full((len(files), NUM_FINDINGS), np.nan, dtype=np.float32)
    return GreyImages(np.arange(len(files)), labels, array, files, cfg.input)
