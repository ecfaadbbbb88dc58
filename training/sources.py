"""Label tables: CheXpert, NIH ChestX-ray14 and generic CSV files aligned to the findings registry.

Every reader returns a :class:`LabelTable` whose label matrix has one column per finding in
registry order, with NaN where a label is unknown (masked in the losses and metrics).
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdviewer.core.findings import FINDING_KEYS, FINDINGS, NUM_FINDINGS, finding
from training.config import DataConfig

log = logging.getLogger(__name__)

# NIH ChestX-ray14 calls pleural effusion "Effusion".
NIH_NAMES = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Effusion": "pleural_effusion",
}


@dataclass(frozen=True)
class LabelTable:
    """Images with patient ids and registry-aligned labels.

    ``keys`` are the paths as written in the label file (stable across machines; splits files use
    them), ``files`` the resolved paths, ``labels`` float32 (N, findings) with NaN = unknown,
    ``given_split`` a provided split per image (or None), ``description`` what the data is.
    """

    keys: tuple[str, ...]
    files: tuple[str, ...]
    patients: tuple[str, ...]
    labels: np.ndarray
    given_split: tuple[str, ...] | None = None
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, index: np.ndarray) -> LabelTable:
        idx = [int(i) for i in index]
        return LabelTable(
            tuple(self.keys[i] for i in idx),
            tuple(self.files[i] for i in idx),
            tuple(self.patients[i] for i in idx),
            self.labels[idx],
            tuple(self.given_split[i] for i in idx) if self.given_split is not None else None,
            self.description,
        )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _resolve_csv(cfg: DataConfig, default: str) -> Path:
    name = cfg.csv or default
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.root) / p


def apply_uncertain(values: np.ndarray, policy: str) -> np.ndarray:
    """Map CheXpert's uncertain label (-1): ``ones`` → 1, ``zeros`` → 0, ``ignore`` → NaN (masked)."""
    out = np.array(values, dtype=np.float32, copy=True)
    unc = out == -1
    out[unc] = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}[policy]
    return out


def _parse_value(text: str | None) -> float:
    text = (text or "").strip()
    if text == "":
        return np.nan
    return float(text)


def _summary(labels: np.ndarray) -> dict[str, Any]:
    known = ~np.isnan(labels)
    return {
        "images": int(labels.shape[0]),
        "positives": {k: int(np.nansum(labels[:, j] == 1)) for j, k in enumerate(FINDING_KEYS)},
        "known": {k: int(known[:, j].sum()) for j, k in enumerate(FINDING_KEYS)},
    }


def _chexpert_file(root: Path, rel: str) -> str:
    # Paths in CheXpert CSVs start with the release folder (e.g. "CheXpert-v1.0-small/train/...");
    # accept a root that is that folder or the one above it.
    for cand in (root / rel, root.parent / rel, root / Path(*Path(rel).parts[1:])):
        if cand.exists():
            return str(cand)
    return str(root / Path(*Path(rel).parts[1:]))


def read_chexpert(cfg: DataConfig) -> LabelTable:
    """CheXpert ``train.csv`` (split here by patient) and ``valid.csv`` (the test split).

    Blank labels (finding not mentioned) are negative, as in the CheXpert convention; -1
    (uncertain) follows ``cfg.uncertain``.
    """
    root = Path(cfg.root)
    parts = [(_resolve_csv(cfg, "train.csv"), None)]
    test_csv = Path(cfg.test_csv or "valid.csv")
    test_csv = test_csv if test_csv.is_absolute() else root / test_csv
    if test_csv.is_file():
        parts.append((test_csv, "test"))
    keys, files, patients, rows, splits = [], [], [], [], []
    for path, split in parts:
        for r in _read_csv(path):
            if cfg.frontal_only and r.get("Frontal/Lateral", "Frontal") != "Frontal":
                continue
            rel = r["Path"]
            m = re.search(r"patient(\d+)", rel)
            keys.append(rel)
            files.append(_chexpert_file(root, rel))
            patients.append(m.group(0) if m else rel)
            rows.append([_parse_value(r.get(f.name)) for f in FINDINGS])
            splits.append(split or "")
    raw = np.array(rows, dtype=np.float32).reshape(-1, NUM_FINDINGS)
    raw = np.nan_to_num(raw, nan=0.0)  # blank = not mentioned = negative
    labels = apply_uncertain(raw, cfg.uncertain)
    given = tuple(splits) if any(splits) else None
    desc = {
        "format": "chexpert",
        "label_files": [str(p) for p, _ in parts],
        "uncertain": cfg.uncertain,
        "frontal_only": cfg.frontal_only,
        **_summary(labels),
    }
    return LabelTable(tuple(keys), tuple(files), tuple(patients), labels, given, desc)


def _nih_image_index(root: Path) -> dict[str, str]:
    # The official release spreads images over images_001/images/ … images_012/images/.
    index = {}
    for pattern in ("images/*.png", "images_*/images/*.png", "*.png"):
        for p in root.glob(pattern):
            index.setdefault(p.name, str(p))
    return index


def read_nih(cfg: DataConfig) -> LabelTable:
    """NIH ChestX-ray14: ``Data_Entry_2017*.csv`` (Finding Labels text, "Effusion" = pleural effusion)
    or a table that already has one column per finding (e.g. ``labels.csv`` with ``image``,
    ``patient_id`` and ``split``). NIH labels are binary: every label is known.
    """
    root = Path(cfg.root)
    default = "labels.csv" if (root / "labels.csv").is_file() else "Data_Entry_2017_v2020.csv"
    if not cfg.csv and not (root / default).is_file() and (root / "Data_Entry_2017.csv").is_file():
        default = "Data_Entry_2017.csv"
    path = _resolve_csv(cfg, default)
    rows = _read_csv(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    keys, files, patients, labels, splits = [], [], [], [], []
    if "Finding Labels" in rows[0]:
        index = _nih_image_index(root)
        for r in rows:
            if cfg.frontal_only and r.get("View Position", "PA") not in ("PA", "AP"):
                continue
            name = r["Image Index"]
            found = set(r["Finding Labels"].split("|"))
            keys.append(name)
            files.append(index.get(name, str(root / "images" / name)))
            patients.append(r["Patient ID"])
            labels.append([1.0 if any(NIH_NAMES.get(n) == k for n in found) else 0.0 for k in FINDING_KEYS])
            splits.append("")
        layout = "Data_Entry_2017"
    else:
        path_col = cfg.path_column or ("image" if "image" in rows[0] else "path")
        names = {k: _column_for(rows[0], k, {"pleural_effusion": ("Effusion",)}) for k in FINDING_KEYS}
        pcol = cfg.patient_column or "patient_id"
        for r in rows:
            if cfg.frontal_only and r.get("view", "PA") not in ("PA", "AP", ""):
                continue
            rel = r[path_col]
            keys.append(rel)
            p = Path(rel)
            files.append(str(p if p.is_absolute() else root / p))
            patients.append(r.get(pcol) or rel)
            labels.append([_parse_value(r[names[k]]) for k in FINDING_KEYS])
            splits.append(r.get(cfg.split_column or "split", "").strip())
        layout = "per-finding columns"
    arr = np.array(labels, dtype=np.float32).reshape(-1, NUM_FINDINGS)
    given = tuple(splits) if any(splits) else None
    desc = {
        "format": "nih",
        "layout": layout,
        "label_files": [str(path)],
        "frontal_only": cfg.frontal_only,
        **_summary(arr),
    }
    return LabelTable(tuple(keys), tuple(files), tuple(patients), arr, given, desc)


def _column_for(row: dict[str, str], key: str, aliases: dict[str, tuple[str, ...]]) -> str:
    f = finding(key)
    for cand in (f.key, f.name, *aliases.get(key, ())):
        if cand in row:
            return cand
    raise KeyError(f"no column for finding {f.name!r} (tried {f.key!r}, {f.name!r}); columns: {list(row)}")


def read_generic(cfg: DataConfig) -> LabelTable:
    """A CSV with a path column and one column per finding (key or name); blank = unknown (NaN).

    Values 1/0 are positive/negative; -1 is uncertain and follows ``cfg.uncertain``. An optional
    patient column groups images in the split (absent: every image is its own patient).
    """
    root = Path(cfg.root)
    path = _resolve_csv(cfg, "labels.csv")
    rows = _read_csv(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    path_col = cfg.path_column or "path"
    if path_col not in rows[0]:
        raise KeyError(f"{path}: no path column {path_col!r}; columns: {list(rows[0])}")
    names = {k: _column_for(rows[0], k, {}) for k in FINDING_KEYS}
    pcol = cfg.patient_column or "patient_id"
    scol = cfg.split_column
    keys, files, patients, labels, splits = [], [], [], [], []
    for r in rows:
        rel = r[path_col]
        p = Path(rel)
        keys.append(rel)
        files.append(str(p if p.is_absolute() else root / p))
        patients.append((r.get(pcol) or "").strip() or rel)
        labels.append([_parse_value(r[names[k]]) for k in FINDING_KEYS])
        splits.append(r.get(scol, "").strip() if scol else "")
    arr = apply_uncertain(np.array(labels, dtype=np.float32).reshape(-1, NUM_FINDINGS), cfg.uncertain)
    given = tuple(splits) if any(splits) else None
    desc = {"format": "generic", "label_files": [str(path)], "uncertain": cfg.uncertain, **_summary(arr)}
    return LabelTable(tuple(keys), tuple(files), tuple(patients), arr, given, desc)


READERS = {"chexpert": read_chexpert, "nih": read_nih, "generic": read_generic}


def read_table(cfg: DataConfig) -> LabelTable:
    """Read the label table of ``cfg.format`` (applying ``cfg.limit``)."""
    if not cfg.root:
        raise ValueError("no data root: pass --data-root DIR (or set data.root)")
    table = READERS[cfg.format](cfg)
    if cfg.limit:
        table = table.subset(np.arange(min(cfg.limit, len(table))))
    log.info("read %d images of %d patients (%s)", len(table), len(set(table.patients)), cfg.format)
    return table
