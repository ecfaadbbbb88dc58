"""A tiny chest-X-ray-like data set built inside the tests, and a matching small config."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdviewer.core.findings import FINDING_KEYS, FINDING_NAMES

TINY_OVERRIDES = [
    "input.size=32",
    'data.format="generic"',
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "train.batch_size=8",
    "train.epochs=2",
    'train.precision="fp32"',
    "train.progress=false",
    "eval.bootstrap=50",
]


def tiny_sets(extra=()) -> list[str]:
    """``--set`` arguments of :data:`TINY_OVERRIDES` followed by ``extra``."""
    return [arg for o in (*TINY_OVERRIDES, *extra) for arg in ("--set", o)]


def _pattern(key_index: int, size: int) -> np.ndarray:
    """A distinct bright blob per finding, so labels are learnable from pixels."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    centres = [(0.25, 0.25), (0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.8, 0.75)]
    cy, cx = centres[key_index]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.01)


def make_tiny_dataset(
    root: Path, n_images: int = 32, size: int = 40, seed: int = 0, blanks: bool = True
) -> Path:
    """Write ``n_images`` 8-bit PNGs (two per patient) and ``labels.csv`` (generic layout) under ``root``."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_images):
        labels = (rng.random(len(FINDING_KEYS)) < 0.5).astype(int)
        # every finding has both classes in every eighth-block, so small splits stay usable
        labels[i % len(FINDING_KEYS)] = i % 2
        img = 0.2 + 0.1 * rng.random((size, size))
        for j, on in enumerate(labels):
            if on:
                img += 0.6 * _pattern(j, size)
        img = np.clip(img / img.max(), 0, 1)
        name = f"img/{i:03d}.png"
        Image.fromarray((img * 255).astype(np.uint8), mode="L").save(root / name)
        row = {"path": name, "patient_id": f"p{i // 2:02d}"}
        for j, k in enumerate(FINDING_NAMES):
            row[k] = str(int(labels[j]))
        if blanks and i % 7 == 3:
            row[FINDING_NAMES[i % 5]] = ""  # unknown label
        rows.append(row)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "patient_id", *FINDING_NAMES])
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin contention
    (measured 10-100x slower with two spinning threads while other processes run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
