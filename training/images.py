"""Decoded, scaled and resized images: each file is read once and kept as an (S, S) float array.

The path is the viewer's: :func:`kdviewer.core.imageio.read_image` then
:func:`kdviewer.core.preprocess.scale_and_resize` (full value range to [0, 1], resize to the
input size). Augmentation and normalisation happen later, on batches (:mod:`training.augment`).
With ``cache="disk"`` the arrays go to one memory-mapped ``.npy`` file keyed by the files (path,
size, modification time) and the input spec, so the teacher, student and distillation stages
decode a dataset once between them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from kdviewer.core.imageio import read_image
from kdviewer.core.preprocess import InputSpec, scale_and_resize

log = logging.getLogger(__name__)


def load_grey(path: str, spec: InputSpec) -> np.ndarray:
    """Read one image file and return its (size, size) float32 [0, 1] array (the viewer's path)."""
    image = read_image(path, reduce_to=spec.read_min_side)  # the viewer's model-path read
    return scale_and_resize(image.pixels, spec, image.value_range)


def cache_key(files: Sequence[str], spec: InputSpec) -> str:
    """SHA-256 (hex, 16 chars) of the input spec and every file's path, size and mtime."""
    h = hashlib.sha256(json.dumps(spec.as_dict(), sort_keys=True).encode())
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    return h.hexdigest()[:16]


def _load_one(args: tuple[str, InputSpec]) -> np.ndarray:
    return load_grey(*args)


def _decode_all(files: Sequence[str], spec: InputSpec, out: np.ndarray, workers: int, progress: bool) -> None:
    bar = tqdm(total=len(files), desc="decoding images", unit="img", disable=not progress, smoothing=0.1)
    try:
        if workers > 0:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with ctx.Pool(workers) as pool:
                for i, arr in enumerate(pool.imap(_load_one, [(f, spec) for f in files], chunksize=16)):
                    out[i] = arr
                    bar.update()
        else:
            for i, f in enumerate(files):
                out[i] = load_grey(f, spec)
                bar.update()
    finally:
        bar.close()


def build_image_array(
    files: Sequence[str],
    spec: InputSpec,
    mode: str,
    cache_dir: str | Path | None,
    workers: int = 0,
    progress: bool = True,
) -> np.ndarray | None:
    """Decode every file once into an (N, S, S) float32 array; None for ``mode="none"``.

    ``mode="disk"`` reuses (or writes, atomically) ``cache_dir/images-<key>.npy`` and returns it
    memory-mapped read-only; ``mode="memory"`` keeps the array in RAM only.
    """
    if mode == "none":
        return None
    shape = (len(files), spec.size, spec.size)
    if mode == "memory" or cache_dir is None:
        arr = np.empty(shape, dtype=np.float32)
        _decode_all(files, spec, arr, workers, progress)
        return arr
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"images-{cache_key(files, spec)}-{spec.size}.npy"
    if path.is_file():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == shape and arr.dtype == np.float32:
            log.info("image cache hit: %s", path)
            return arr
        log.warning("image cache %s has shape %s, expected %s: rebuilding", path, arr.shape, shape)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    try:
        _decode_all(files, spec, arr, workers, progress)
        arr.flush()
        del arr
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("image cache written: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return np.load(path, mmap_mode="r")


class GreyImages(Dataset):
    """Images of one split as (1, S, S) [0, 1] tensors with their labels and row index.

    Fetching is batched (``__getitems__``): the loader yields ``(x, y, index)`` tensors directly.
    """

    def __init__(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        array: np.ndarray | None,
        files: Sequence[str],
        spec: InputSpec,
    ):
        self.rows = np.asarray(rows, dtype=np.int64)  # indices into the table / image array
        self.labels = torch.from_numpy(np.ascontiguousarray(labels[self.rows], dtype=np.float32))
        self.array = array
        self.files = files
        self.spec = spec

    def __len__(self) -> int:
        return len(self.rows)

    def _pixels(self, positions: list[int]) -> np.ndarray:
        rows = self.rows[positions]
        if self.array is not None:
            return np.asarray(self.array[rows], dtype=np.float32)
        return np.stack([load_grey(self.files[r], self.spec) for r in rows])

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self._pixels(list(positions))).unsqueeze(1)
        idx = torch.as_tensor(positions, dtype=torch.int64)
        return x, self.labels[idx], idx

    def __getitem__(self, position: int):
        x, y, i = self.__getitems__([position])
        return x[0], y[0], i[0]


def collate_batch(batch):
    """The dataset already returns a batch (``__getitems__``); pass it through."""
    return batch


class StackedImages(Dataset):
    """Two image sets as one (positions past the first set's length index the second), e.g. the
    training split followed by a distillation-only transfer set of unlabelled images."""

    def __init__(self, first: GreyImages, second: GreyImages):
        self.first, self.second = first, second
        self.labels = torch.cat([first.labels, second.labels])
        self.spec = first.spec

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(list(positions), dtype=torch.int64)
        in_first = idx < len(self.first)
        x = torch.empty(len(idx), 1, self.spec.size, self.spec.size)
        for part, mask, offset in ((self.first, in_first, 0), (self.second, ~in_first, len(self.first))):
            if mask.any():
                x[mask] = part.__getitems__((idx[mask] - offset).tolist())[0]
        return x, self.labels[idx], idx

    def __getitem__(self, position: int):
        x, y, i = self.__getitems__([position])
        return x[0], y[0], i[0]
