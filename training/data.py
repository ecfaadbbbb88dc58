"""The data a stage trains on: label table, patient-level splits, decoded images, pos_weight."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdviewer.core.findings import FINDING_KEYS
from training.config import Config
from training.distributed import DistInfo, barrier
from training.images import GreyImages, build_image_array
from training.losses import pos_weight_from_labels
from training.sources import LabelTable, read_table
from training.splits import draw_splits, read_splits, split_counts, write_splits
from training.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    table: LabelTable
    splits: np.ndarray  # "train" / "val" / "test" per image
    array: np.ndarray | None  # (N, S, S) decoded images, or None to decode on the fly
    pos_weight: np.ndarray  # per finding, from the training split

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def dataset(self, split: str, cfg: Config) -> GreyImages:
        return GreyImages(self.rows(split), self.table.labels, self.array, self.table.files, cfg.input)

    def description(self) -> dict:
        return {
            **self.table.description,
            "splits": split_counts(self.splits),
            "patients": len(set(self.table.patients)),
            "pos_weight": {k: float(w) for k, w in zip(FINDING_KEYS, self.pos_weight, strict=True)},
        }


def resolve_splits(
    cfg: Config, table: LabelTable, ws: Workspace, splits_file: str | Path | None, info: DistInfo
) -> np.ndarray:
    """Splits from ``splits_file``, else ``<workdir>/splits.csv``, else drawn here and written there."""
    src = Path(splits_file) if splits_file else ws.splits
    if src.is_file():
        splits = read_splits(src, table)
        log.info("splits from %s: %s", src, split_counts(splits))
        if src != ws.splits and info.is_main:
            ws.root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, ws.splits)
        return splits
    if splits_file:
        raise FileNotFoundError(f"splits file not found: {splits_file}")
    splits = draw_splits(
        table,
        cfg.data.val_fraction,
        cfg.data.test_fraction,
        cfg.seed,
        use_given=bool(cfg.data.split_column) or table.given_split is not None,
    )
    if info.is_main:
        write_splits(ws.splits, table, splits)
        log.info("splits drawn by patient and written to %s: %s", ws.splits, split_counts(splits))
    return splits


def prepare_data(
    cfg: Config,
    ws: Workspace,
    info: DistInfo,
    splits_file: str | Path | None = None,
    need_images: bool = True,
) -> PreparedData:
    """Read labels, resolve splits and decode images once (rank 0 builds the disk cache first)."""
    table = read_table(cfg.data)
    splits = resolve_splits(cfg, table, ws, splits_file, info)
    barrier(info)
    if (splits == "train").sum() == 0 or (splits == "val").sum() == 0:
        raise ValueError(f"need images in both train and val splits, got {split_counts(splits)}")
    array = None
    if need_images:
        cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else ws.cache
        if info.is_main or cfg.data.cache != "disk":
            array = build_image_array(
                table.files,
                cfg.input,
                cfg.data.cache,
                cache_dir,
                cfg.data.num_workers,
                cfg.train.progress and info.is_main,
            )
        barrier(info)
        if array is None and cfg.data.cache == "disk":
            array = build_image_array(table.files, cfg.input, "disk", cache_dir, 0, False)
    pos_weight = pos_weight_from_labels(table.labels[splits == "train"])
    return PreparedData(table, splits, array, pos_weight)
