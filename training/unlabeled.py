"""A distillation-only transfer set: images without labels that the distill stage adds to its
training images (``--unlabeled DIR`` / ``data.unlabeled``).

Any file the viewer's reader reads counts (DICOM, PNG, JPEG, found as the viewer's folder walk
finds them), decoded and resized by the same path as the labelled images. Every label is unknown,
so the masked BCE ignores them and only the distillation term learns from them. A file whose
bytes or decoded pixels equal a validation or test image's is refused (an error naming it): the
images that choose the epoch or report the figures must never be taught on.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from kdviewer.core.findings import NUM_FINDINGS
from kdviewer.core.hashing import sha256_file
from kdviewer.core.imageio import iter_image_files
from training.config import Config
from training.data import PreparedData
from training.images import GreyImages, build_image_array, load_grey
from training.workspace import Workspace

log = logging.getLogger(__name__)

HELD_OUT = ("val", "test")


def _pixel_hash(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.float32).tobytes()).hexdigest()


def held_out_hashes(data: PreparedData, cfg: Config) -> set[str]:
    """SHA-256 of the files and of the decoded pixels of every validation and test image."""
    out = set()
    for split in HELD_OUT:
        for r in data.rows(split):
            f = data.table.files[r]
            out.add(sha256_file(f))
            out.add(_pixel_hash(data.array[r] if data.array is not None else load_grey(f, cfg.input)))
    return out


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
    held_out = held_out_hashes(data, cfg)
    clash = [
        f for i, f in enumerate(files) if sha256_file(f) in held_out or _pixel_hash(array[i]) in held_out
    ]
    if clash:
        raise ValueError(
            f"{len(clash)} of the unlabelled images are validation or test images (same file or same "
            f"pixels), e.g. {', '.join(clash[:3])}; remove them from {folder}"
        )
    log.info("unlabelled transfer set: %d images from %s (distillation term only)", len(files), folder)
    labels = np.full((len(files), NUM_FINDINGS), np.nan, dtype=np.float32)
    return GreyImages(np.arange(len(files)), labels, array, files, cfg.input)
