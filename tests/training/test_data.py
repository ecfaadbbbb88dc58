"""Label tables (CheXpert uncertainty policies, NIH layouts, generic CSV), splits and the image cache."""

import csv
from pathlib import Path

import numpy as np
import pytest

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.preprocess import InputSpec, scale_and_resize
from training.config import DataConfig
from training.images import build_image_array, load_grey
from training.sources import read_table
from training.splits import check_patient_disjoint, draw_splits, read_splits, write_splits

CHEX_COLS = [
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "AP/PA",
    "No Finding",
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
]


def _write(path: Path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)


@pytest.fixture
def chexpert(tmp_path):
    rel = "CheXpert-v1.0-small/train/patient{:05d}/study1/view1_{}.jpg"
    _write(
        tmp_path / "train.csv",
        CHEX_COLS,
        [
            [rel.format(1, "frontal"), "F", 50, "Frontal", "PA", "", "-1.0", "1.0", "", "0.0", "-1.0"],
            [rel.format(1, "lateral"), "F", 50, "Lateral", "", "", "1.0", "1.0", "", "0.0", "-1.0"],
            [rel.format(2, "frontal"), "M", 60, "Frontal", "AP", "1.0", "", "", "", "", ""],
        ],
    )
    _write(
        tmp_path / "valid.csv",
        CHEX_COLS,
        [
            [
                "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg",
                "M",
                70,
                "Frontal",
                "AP",
                "",
                "1.0",
                "0.0",
                "0.0",
                "0.0",
                "1.0",
            ],
        ],
    )
    return tmp_path


@pytest.mark.parametrize("policy,unc", [("ones", 1.0), ("zeros", 0.0), ("ignore", np.nan)])
def test_chexpert_uncertainty_policies(chexpert, policy, unc):
    t = read_table(DataConfig(format="chexpert", root=str(chexpert), uncertain=policy))
    assert len(t) == 3  # lateral dropped (frontal_only), valid.csv included
    first = t.labels[0]
    np.testing.assert_array_equal(first[[1, 2, 3]], [1.0, 0.0, 0.0])  # blank -> 0 (not mentioned)
    for j in (0, 4):  # the -1 labels
        assert (np.isnan(first[j]) and np.isnan(unc)) or first[j] == unc
    np.testing.assert_array_equal(t.labels[1], np.zeros(5))  # all blank -> negative
    assert t.patients[0] == "patient00001" and t.given_split == ("", "", "test")
    assert t.description["uncertain"] == policy


def test_chexpert_lateral_kept_without_frontal_only(chexpert):
    t = read_table(DataConfig(format="chexpert", root=str(chexpert), frontal_only=False))
    assert len(t) == 4


def test_nih_data_entry_layout_maps_effusion(tmp_path):
    _write(
        tmp_path / "Data_Entry_2017_v2020.csv",
        [
            "Image Index",
            "Finding Labels",
            "Follow-up #",
            "Patient ID",
            "Patient Age",
            "Patient Gender",
            "View Position",
        ],
        [
            ["00000001_000.png", "Cardiomegaly|Effusion", 0, 1, 58, "M", "PA"],
            ["00000002_000.png", "No Finding", 0, 2, 80, "M", "AP"],
            ["00000003_000.png", "Edema|Pneumonia", 0, 3, 70, "F", "LL"],
        ],
    )
    t = read_table(DataConfig(format="nih", root=str(tmp_path)))
    assert len(t) == 2  # lateral view dropped
    np.testing.assert_array_equal(t.labels[0], [0, 1, 0, 0, 1])  # Effusion -> pleural_effusion
    np.testing.assert_array_equal(t.labels[1], [0, 0, 0, 0, 0])
    assert t.patients == ("1", "2") and t.files[0].endswith("images/00000001_000.png")


def test_nih_shared_labels_layout_uses_split_column(nih_dir):
    t = read_table(DataConfig(format="nih", root=str(nih_dir)))
    assert len(t) == 1861 and not np.isnan(t.labels).any()
    splits = draw_splits(t, 0.1, 0.0, seed=0)
    assert (splits == "train").sum() == 1577 and (splits == "val").sum() == 284
    assert int(t.labels[splits == "train", FINDING_KEYS.index("pleural_effusion")].sum()) == 164
    carved = draw_splits(t, 0.1, 0.15, seed=0)
    assert (carved == "val").sum() == 284 and (carved == "test").sum() > 0
    check_patient_disjoint(t, carved)
    assert Path(t.files[0]).is_file()


def test_generic_blank_is_unknown_and_minus_one_follows_policy(tmp_path):
    _write(
        tmp_path / "labels.csv",
        ["path", "patient_id", "atelectasis", "Cardiomegaly", "consolidation", "edema", "Pleural Effusion"],
        [["a.png", "x", "1", "", "0", "-1", "1"], ["b.png", "", "0", "1", "1", "0", ""]],
    )
    t = read_table(DataConfig(format="generic", root=str(tmp_path), uncertain="ignore"))
    assert np.isnan(t.labels[0, 1]) and np.isnan(t.labels[0, 3]) and np.isnan(t.labels[1, 4])
    assert t.labels[0, 0] == 1 and t.patients == ("x", "b.png")
    t1 = read_table(DataConfig(format="generic", root=str(tmp_path), uncertain="ones"))
    assert t1.labels[0, 3] == 1 and np.isnan(t1.labels[0, 1])


def test_splits_are_by_patient_and_round_trip(tiny_data, tmp_path):
    t = read_table(DataConfig(format="generic", root=str(tiny_data)))
    s = draw_splits(t, 0.25, 0.25, seed=0)
    assert set(s) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        others = {p for p, x in zip(t.patients, s, strict=True) if x != split}
        assert not others & {p for p, x in zip(t.patients, s, strict=True) if x == split}
    write_splits(tmp_path / "splits.csv", t, s)
    np.testing.assert_array_equal(read_splits(tmp_path / "splits.csv", t), s)
    np.testing.assert_array_equal(draw_splits(t, 0.25, 0.25, seed=0), s)  # seeded


def test_split_column_with_a_patient_in_two_splits_is_an_error(tmp_path):
    _write(
        tmp_path / "labels.csv",
        ["path", "patient_id", *FINDING_KEYS, "split"],
        [["a.png", "p", 1, 0, 0, 0, 0, "train"], ["b.png", "p", 0, 0, 0, 0, 0, "val"]],
    )
    t = read_table(DataConfig(format="generic", root=str(tmp_path), split_column="split"))
    with pytest.raises(ValueError, match="both"):
        draw_splits(t, 0.1, 0.0, seed=0)


def test_image_cache_is_the_viewers_path_and_is_reused(tiny_data, tmp_path):
    from kdviewer.core.imageio import read_image

    t = read_table(DataConfig(format="generic", root=str(tiny_data)))
    spec = InputSpec(size=24)
    files = t.files[:5]
    arr = build_image_array(files, spec, "disk", tmp_path, progress=False)
    img = read_image(files[2])
    np.testing.assert_array_equal(arr[2], scale_and_resize(img.pixels, spec, img.value_range))
    np.testing.assert_array_equal(arr[2], load_grey(files[2], spec))
    cached = list(tmp_path.glob("images-*.npy"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = build_image_array(files, spec, "disk", tmp_path, progress=False)
    assert cached[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again, arr)
    assert build_image_array(files, spec, "none", tmp_path) is None
