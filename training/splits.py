"""Patient-level train/val/test splits, written to disk and reused by later stages."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from training.sources import LabelTable

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def draw_splits(
    table: LabelTable, val_fraction: float, test_fraction: float, seed: int, use_given: bool = True
) -> np.ndarray:
    """Assign every image to train/val/test so that no patient is in two splits.

    A provided split (``table.given_split``, e.g. CheXpert's valid.csv as test, or a split column)
    is kept where present; the remaining images' patients are shuffled with ``seed`` and the first
    ``test_fraction`` of them go to test (only if the table has no test split), the next
    ``val_fraction`` to val (only if it has no val split), the rest to train.
    """
    n = len(table)
    out = np.array(["" for _ in range(n)], dtype=object)
    if use_given and table.given_split is not None:
        for i, s in enumerate(table.given_split):
            if s:
                if s not in SPLITS:
                    raise ValueError(f"split value {s!r} for {table.keys[i]}; expected one of {SPLITS}")
                out[i] = s
    given = set(out[out != ""])
    free = [i for i in range(n) if out[i] == "" or (out[i] == "train" and "val" not in given)]
    # A provided "train" with no provided "val" is split further (its patients only).
    patients = sorted({table.patients[i] for i in free})
    rng = np.random.default_rng(seed)
    order = [patients[j] for j in rng.permutation(len(patients))]
    n_test = int(round(test_fraction * len(order))) if "test" not in given else 0
    n_val = int(round(val_fraction * len(order))) if "val" not in given else 0
    assign = {p: "test" for p in order[:n_test]}
    assign.update({p: "val" for p in order[n_test : n_test + n_val]})
    for i in free:
        out[i] = assign.get(table.patients[i], "train")
    # A provided split with a test fraction asked for: carve test patients out of train.
    if test_fraction > 0 and "test" not in set(out):
        train_patients = sorted({table.patients[i] for i in range(n) if out[i] == "train"})
        order = [train_patients[j] for j in rng.permutation(len(train_patients))]
        test_p = set(order[: int(round(test_fraction * len(order)))])
        for i in range(n):
            if out[i] == "train" and table.patients[i] in test_p:
                out[i] = "test"
    check_patient_disjoint(table, out)
    return out.astype(str)


def check_patient_disjoint(table: LabelTable, splits: np.ndarray) -> None:
    """Raise ValueError if any patient has images in two splits."""
    seen: dict[str, str] = {}
    for p, s in zip(table.patients, splits, strict=True):
        if seen.setdefault(p, s) != s:
            raise ValueError(f"patient {p!r} is in both {seen[p]!r} and {s!r}: splits must be by patient")


def write_splits(path: str | Path, table: LabelTable, splits: np.ndarray) -> None:
    """Write ``path,patient_id,split`` rows (paths as in the label file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient_id", "split"])
        for k, p, s in zip(table.keys, table.patients, splits, strict=True):
            w.writerow([k, p, s])
    tmp.replace(path)


def read_splits(path: str | Path, table: LabelTable) -> np.ndarray:
    """Read a splits file for ``table``; every image must be listed."""
    with open(path, newline="", encoding="utf-8") as f:
        by_key = {r["path"]: r["split"] for r in csv.DictReader(f)}
    missing = [k for k in table.keys if k not in by_key]
    if missing:
        raise ValueError(f"{path}: {len(missing)} images are not in the splits file, e.g. {missing[:3]}")
    out = np.array([by_key[k] for k in table.keys], dtype=str)
    check_patient_disjoint(table, out)
    return out


def split_counts(splits: np.ndarray) -> dict[str, int]:
    return {s: int((splits == s).sum()) for s in SPLITS if (splits == s).any()}
