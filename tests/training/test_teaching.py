"""Consistent teaching: fixed augmented views scored once, teacher ensembles, and a transfer set
of unlabelled images (tiny runs)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from kdviewer.core.preprocess import InputSpec, normalize
from training.augment import AugmentedViews, Jitter
from training.cli import main
from training.config import load_config
from training.images import load_grey
from training.losses import distillation_loss, kd_term
from training.reproducibility import derived_seed
from training.runlog import read_jsonl
from training.teaching import VIEWS_FILE, combine_logits, load_teacher
from training.unlabeled import SAME_PICTURE, same_picture_scores, thumbnails

from .conftest import TINY_OVERRIDES, tiny_sets


@pytest.fixture(scope="module")
def teachers(tiny_data, tmp_path_factory):
    """A work folder with a trained teacher and plain student (one epoch each)."""
    work = tmp_path_factory.mktemp("teach")
    for stage in ("teacher", "student"):
        assert (
            main(
                [stage, "--data-root", str(tiny_data), "--workdir", str(work), *tiny_sets(["train.epochs=1"])]
            )
            == 0
        )
    return work


def test_a_view_depends_on_the_seed_and_the_image_position_only():
    jitter = Jitter(scale=0.1, translate=0.05, brightness=0.1, contrast=0.2)
    views = AugmentedViews(7, 3, 10, True, 10.0, jitter)
    again = AugmentedViews(7, 3, 10, True, 10.0, jitter)
    x = torch.rand(10, 1, 16, 16)
    whole = views(x, torch.arange(10), 2)
    part = again(x[[6, 1]], torch.tensor([6, 1]), 2)  # another batch, another order: the same pixels
    torch.testing.assert_close(part, whole[[6, 1]], rtol=0, atol=0)
    assert not torch.equal(views(x, torch.arange(10), 0), whole)  # views differ from each other
    assert not torch.equal(AugmentedViews(8, 3, 10, True, 10.0, jitter)(x, torch.arange(10), 2), whole)


def test_ensemble_means_logits_or_probabilities():
    a, b = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.0, -3.0]])
    torch.testing.assert_close(combine_logits([a, b], "logits"), torch.tensor([[1.0, -2.0]]))
    p = (torch.sigmoid(a) + torch.sigmoid(b)) / 2
    torch.testing.assert_close(combine_logits([a, b], "probs"), torch.log(p / (1 - p)))
    torch.testing.assert_close(combine_logits([a], "probs"), a)
    with pytest.raises(ValueError, match="ensemble"):
        combine_logits([a, b], "votes")


def test_distilling_on_views_uses_the_teachers_logits_of_exactly_those_views(teachers, tiny_data):
    args = ["distill", "--data-root", str(tiny_data), "--workdir", str(teachers)]
    extra = ["train.epochs=2", "distill.views=2", "train.scale=0.1", "train.brightness=0.1"]
    assert main([*args, *tiny_sets(extra)]) == 0
    run = teachers / "student"
    saved = torch.load(run / VIEWS_FILE, weights_only=True)
    cfg = load_config(None, [*TINY_OVERRIDES, *extra, f'data.root="{tiny_data}"'])
    rows = [
        i
        for i, line in enumerate((teachers / "splits.csv").read_text().splitlines()[1:])
        if line.endswith(",train")
    ]
    assert saved["logits"].shape == (2, len(rows), 5)
    # recompute view 1 of the first training images from the teacher and the views' seed
    teacher = load_teacher(teachers / "teacher", cfg)
    views = AugmentedViews(derived_seed(cfg.seed, 8), 2, len(rows), True, 10.0, cfg.jitter())
    files = sorted(p for p in (tiny_data / "img").glob("*.png"))
    x = torch.from_numpy(np.stack([load_grey(str(files[r]), cfg.input) for r in rows[:4]])).unsqueeze(1)
    with torch.no_grad():
        expect = teacher(normalize(views(x, torch.arange(4), 1), cfg.input))
    torch.testing.assert_close(saved["logits"][1, :4], expect, rtol=1e-4, atol=1e-4)
    # a second run with the same teacher and views reuses them: the file is not rewritten
    stamp = (run / VIEWS_FILE).stat().st_mtime_ns
    assert main([*args, *tiny_sets(extra)]) == 0
    assert (run / VIEWS_FILE).stat().st_mtime_ns == stamp


def test_an_ensemble_of_run_folders_teaches_and_is_recorded(teachers, tiny_data):
    args = ["distill", "--data-root", str(tiny_data), "--workdir", str(teachers)]
    ens = ["--teacher", str(teachers / "teacher"), "--teacher", str(teachers / "student_plain")]
    assert main([*args, *ens, *tiny_sets(['distill.ensemble="probs"'])]) == 0
    cfg = (teachers / "student" / "config.json").read_text()
    assert "student_plain" in cfg and '"probs"' in cfg
    assert len(read_jsonl(teachers / "student" / "log.jsonl")) == 2


def _write_png(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8), mode="L").save(path)


def test_unlabelled_images_join_the_distillation_only(teachers, tiny_data, tmp_path, caplog):
    extra = tmp_path / "extra"
    extra.mkdir()
    for i in range(3):
        _write_png(extra / f"u{i}.png", 100 + i)
    args = ["distill", "--data-root", str(tiny_data), "--workdir", str(teachers), "--unlabeled", str(extra)]
    with caplog.at_level("INFO"):
        assert main([*args, *tiny_sets(["train.epochs=1", "distill.views=1"])]) == 0
    assert "unlabelled transfer set: 3 images" in caplog.text
    n_train = sum(line.endswith(",train") for line in (teachers / "splits.csv").read_text().splitlines())
    logits = torch.load(teachers / "student" / VIEWS_FILE, weights_only=True)["logits"]
    assert logits.shape == (1, n_train + 3, 5)  # the teacher scored the unlabelled images too
    # a labelled-free batch contributes only the distillation term
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    y = torch.full((4, 5), float("nan"))
    torch.testing.assert_close(distillation_loss(s, t, y, None, 0.7, 6.0, 1.0), 0.3 * kd_term(s, t, 6.0))


def test_a_val_or_test_image_in_the_unlabelled_folder_is_refused(teachers, tiny_data, tmp_path, caplog):
    splits = (teachers / "splits.csv").read_text().splitlines()[1:]
    held_out = next(line.split(",")[0] for line in splits if line.endswith(",val"))
    extra = tmp_path / "extra"
    extra.mkdir()
    _write_png(extra / "fine.png", 5)
    # the same pixels under another name and format (a re-encoded copy) count as the same image
    Image.open(tiny_data / held_out).save(extra / "renamed.png", optimize=True)
    # the same picture at another size, and inverted (a MONOCHROME1-style copy)
    big = Image.open(tiny_data / held_out).resize((97, 97), Image.Resampling.LANCZOS)
    big.save(extra / "bigger.png")
    Image.eval(big, lambda v: 255 - v).save(extra / "inverted.jpg", quality=95)
    args = ["distill", "--data-root", str(tiny_data), "--workdir", str(teachers), "--unlabeled", str(extra)]
    with caplog.at_level("ERROR"):
        assert main([*args, *tiny_sets(["train.epochs=1"])]) == 2
    assert "3 of the unlabelled images are validation or test images" in caplog.text
    assert "renamed.png" in caplog.text and "bigger.png" in caplog.text


def test_the_shared_dicom_copy_of_a_val_image_is_the_same_picture_and_the_other_chests_are_not(
    nih_dir, dicom_dir
):
    spec = InputSpec()
    with open(nih_dir / "labels.csv", newline="") as f:
        val = [r["image"] for r in csv.DictReader(f) if r["split"] == "val"]
    held = thumbnails(np.stack([load_grey(str(nih_dir / v), spec) for v in val]))
    copy = dicom_dir / "nih_google_dx" / "tfio_dicom_00000001_000.dcm"  # NIH 00000001_000, a val image
    assert "images/00000001_000.png" in val
    others = sorted((dicom_dir / "cxr").glob("*.dcm"))
    scores = same_picture_scores(np.stack([load_grey(str(p), spec) for p in [copy, *others]]), held)
    assert scores[0] >= 0.999 and scores[0] >= SAME_PICTURE
    assert len(others) == 6 and scores[1:].max() < 0.9 < SAME_PICTURE
