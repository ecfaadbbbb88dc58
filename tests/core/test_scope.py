"""The scope check (kdviewer.core.scope): header rules, the shipped pixel model on real images,
header-only refusals that never decode pixels, and the parameters file's verification."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kdviewer.core import scope
from kdviewer.core.engine import InferenceEngine
from kdviewer.core.errors import ImageReadError, ModelLoadError
from kdviewer.core.image import ImageMetadata
from kdviewer.core.imageio import read_image
from kdviewer.core.modelcard import ModelCard, read_card
from kdviewer.core.resources import resources_dir
from tests.core import dicom_factory as dcm

STUDENT = resources_dir() / "models" / "student.json"


def _meta(**kw) -> ImageMetadata:
    return ImageMetadata(source_format=kw.pop("source_format", "DICOM"), rows=64, cols=64, **kw)


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"modality": "MR"}, "header says MR"),
        ({"modality": "CT", "body_part": "CHEST"}, "header says CT"),
        ({"modality": "CR", "body_part": "HIP"}, "not a chest radiograph (header says body part HIP)"),
        ({"modality": "DX", "body_part": "CHEST", "view_position": "LL"}, "lateral view"),
        ({"modality": "DX", "view_position": "LATERAL"}, "lateral view"),
        ({"modality": "CR", "view_position": "RAO"}, "oblique view"),
        ({"modality": "CR", "body_part": "CHEST", "patient_age": "006Y"}, "paediatric (under 18 years)"),
        ({"modality": "DX", "patient_age": "011M"}, "paediatric (under 18 years)"),
    ],
)
def test_header_rules_refuse_with_a_reason(fields, reason):
    verdict = scope.header_verdict(_meta(**fields))
    assert verdict is not None and not verdict.in_scope and verdict.source == "header"
    assert verdict.reason == reason
    assert "006" not in verdict.reason and "011" not in verdict.reason  # no identifying values


@pytest.mark.parametrize(
    "fields",
    [
        {"modality": "CR", "body_part": "CHEST", "view_position": "PA", "patient_age": "045Y"},
        {"modality": "DX", "body_part": "THORAX", "view_position": "AP"},
        {"modality": "SC"},  # a secondary capture may hold a chest film: the pixels decide
        {},
        {"source_format": "PNG"},
    ],
)
def test_header_rules_pass_adult_frontal_chest_and_silent_headers(fields):
    assert scope.header_verdict(_meta(**fields)) is None


def test_patient_orientation_of_a_lateral_without_view_position():
    ds = dcm.make_dataset(dcm.ramp(), PatientOrientation=["A", "F"])
    verdict = scope.header_verdict(_meta(modality="CR"), ds)
    assert verdict is not None and verdict.reason.startswith("lateral view")
    ds.PatientOrientation = ["L", "F"]
    assert scope.header_verdict(_meta(modality="CR"), ds) is None


def _garbage_pixels_mr(path: Path) -> Path:
    """An MR file whose pixel data is cut to a third: the header is intact, the pixels are not."""
    ds = dcm.make_dataset(dcm.ramp(96, 96, hi=4000), modality="MR", BodyPartExamined="HEAD")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    return dcm.write(ds, path)


def test_header_only_refusal_never_touches_the_pixels(tmp_path, monkeypatch):
    path = _garbage_pixels_mr(tmp_path / "mr.dcm")
    with pytest.raises(ImageReadError):
        read_image(path)  # the pixels really are unreadable

    def no_pixels(*a, **k):
        raise AssertionError("the header check decoded pixels")

    monkeypatch.setattr("kdviewer.core.imageio._decode", no_pixels)
    monkeypatch.setattr("kdviewer.core.imageio.check_pixel_data", no_pixels)
    verdict = scope.header_only(path)
    assert verdict is not None and not verdict.in_scope and verdict.reason == "header says MR"
    assert scope.header_only(tmp_path / "missing.dcm") is None


def test_predict_reports_the_header_refusal_of_an_undecodable_file(tmp_path):
    from kdviewer.cli import predict_command

    path = _garbage_pixels_mr(tmp_path / "mr.dcm")
    out = tmp_path / "out.json"
    assert predict_command([str(path)], output=out) == 1  # the pixels fail, as they must
    (record,) = json.loads(out.read_text())
    assert record["error"] and record["scope"]["in_scope"] is False
    assert record["scope"]["reason"] == "header says MR"


# --------------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def student():
    engine = InferenceEngine.from_card(STUDENT)
    model = scope.scope_of_engine(engine)
    assert model is not None, "the shipped student card has no scope check"
    return engine, model


def _val_paths(nih_dir: Path) -> list[Path]:
    with open(nih_dir / "labels.csv", newline="", encoding="utf-8") as f:
        return [nih_dir / r["image"] for r in csv.DictReader(f) if r["split"] == "val"]


def _verdict(engine, model, image, header=True):
    if not header:  # as if the file had been converted to PNG: the pixels alone decide
        image = dataclasses.replace(
            image, metadata=dataclasses.replace(image.metadata, source_format="PNG"), dataset=None
        )
    return scope.check(image, engine.predict(image, heatmaps=False, measure_energy=False).features, model)


@pytest.mark.parametrize("name", ["wg04_RG2_UNC.dcm", "wg04_RG3_UNC.dcm"])  # hip, tibia
def test_shared_non_chest_cr_files_are_refused_by_header_and_by_pixels(dicom_dir, student, name):
    engine, model = student
    image = read_image(dicom_dir / "other_cr" / name, reduce_to=224)
    by_header = _verdict(engine, model, image)
    assert not by_header.in_scope and "not a chest radiograph" in by_header.reason
    assert by_header.ood_score is not None and by_header.threshold == 1.0
    by_pixels = _verdict(engine, model, image, header=False)
    assert not by_pixels.in_scope and by_pixels.reason and by_pixels.ood_score > 1.0


def test_val_images_pass_at_the_rate_the_card_states(nih_dir, student):
    engine, model = student
    paths = _val_paths(nih_dir)
    verdicts = [_verdict(engine, model, read_image(p)) for p in paths]
    accepted = np.mean([v.in_scope for v in verdicts])
    stated = read_card(STUDENT).scope["acceptance"]["val"]
    assert accepted >= 0.98
    assert accepted == pytest.approx(stated, abs=1e-4)
    assert all(v.reason is None and 0 <= v.ood_score <= 1.0 for v in verdicts if v.in_scope)


def test_real_chest_dicom_is_in_scope(dicom_dir, student):
    engine, model = student
    image = read_image(dicom_dir / "cxr" / "pydicomdata_RG1_UNCR.dcm", reduce_to=224)
    assert _verdict(engine, model, image).in_scope


@pytest.mark.parametrize(
    "transform, words",
    [
        (lambda p: p.max() + p.min() - p, "inverted"),
        (lambda p: np.rot90(p, 2), "rotated"),
        (lambda p: np.full_like(p, 7.0), "empty"),
    ],
)
def test_inverted_rotated_and_blank_chest_films_are_refused(nih_dir, student, transform, words):
    engine, model = student
    refused = []
    for p in _val_paths(nih_dir)[:8]:
        image = read_image(p)
        px = np.ascontiguousarray(transform(image.pixels), dtype=np.float32)
        image = dataclasses.replace(image, pixels=px)
        refused.append(_verdict(engine, model, image))
    assert sum(not v.in_scope for v in refused) >= 7
    assert sum(words in (v.reason or "") for v in refused) >= 6


def test_natural_photo_is_refused(student):
    cbook = pytest.importorskip("matplotlib.cbook")  # the photo it ships (a training extra)

    engine, model = student
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        path = Path(f.name)
    verdict = _verdict(engine, model, read_image(path))
    assert not verdict.in_scope and verdict.ood_score > 1.0


# --------------------------------------------------------------------------- the parameters file


def test_layout_vector_is_standardised_and_none_without_contrast():
    px = np.add.outer(np.arange(300.0), np.arange(200.0)).astype(np.float32)
    v = scope.layout_vector(px, (0.0, 498.0))
    assert v.shape == (scope.LAYOUT_SIDE**2,)
    assert v.mean() == pytest.approx(0.0, abs=1e-9) and v.std() == pytest.approx(1.0)
    assert scope.layout_vector(np.full((300, 200), 5.0, np.float32), (5.0, 5.0)) is None


def _copy_card(tmp_path: Path) -> Path:
    card = read_card(STUDENT)
    int8 = [card.int8["file"]] if card.int8 else []
    for name in (card.weights_file, card.onnx_file, card.scope["file"], *int8):
        (tmp_path / name).write_bytes((STUDENT.parent / name).read_bytes())
    out = tmp_path / "student.json"
    out.write_text(card.to_json())
    return out


def test_scope_file_is_verified_by_its_sha256(tmp_path):
    path = _copy_card(tmp_path)
    card = read_card(path)
    assert isinstance(scope.load_scope(card, path), scope.ScopeModel)
    blob = bytearray((tmp_path / card.scope["file"]).read_bytes())
    blob[-1] ^= 1
    (tmp_path / card.scope["file"]).write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError, match="SHA-256"):
        scope.load_scope(card, path)
    engine = InferenceEngine.from_card(path)
    assert engine.status.usable and scope.scope_of_engine(engine) is None  # header check only, logged


@pytest.mark.parametrize(
    "change, match",
    [
        ({"file": "../x.safetensors"}, "plain file name"),
        ({"sha256": "abc"}, "sha256"),
        ({"threshold": float("inf")}, "finite"),
    ],
)
def test_card_scope_section_is_validated(change, match):
    d = json.loads(STUDENT.read_text())
    d["scope"] = {**d["scope"], **change}
    with pytest.raises(ValueError, match=match):
        ModelCard.from_dict(d)


def test_scope_arrays_are_checked():
    model = scope.load_scope(read_card(STUDENT), STUDENT)
    arrays = model.arrays()
    with pytest.raises(ValueError, match="positive number"):
        scope.ScopeModel.from_arrays(arrays, {"features": 1.0, "layout": -1.0})
    bad = {**arrays, "layout.center": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match="inconsistent shapes"):
        scope.ScopeModel.from_arrays(bad, model.thresholds)
    bad = {**arrays, "features.mean": np.full_like(arrays["features.mean"], np.nan)}
    with pytest.raises(ValueError, match="not all finite"):
        scope.ScopeModel.from_arrays(bad, model.thresholds)


def test_predict_writes_the_verdict_and_keeps_the_scores(tmp_path, nih_dir, dicom_dir):
    from kdviewer.cli import predict_command

    chest = _val_paths(nih_dir)[0]
    hip = dicom_dir / "other_cr" / "wg04_RG2_UNC.dcm"
    out = tmp_path / "out.json"
    assert predict_command([str(chest), str(hip)], output=out) == 0
    records = {Path(r["file"]).name: r for r in json.loads(out.read_text())}
    ok, refused = records[chest.name], records[hip.name]
    assert ok["scope"]["in_scope"] is True and ok["scope"]["reason"] is None
    assert 0 <= ok["scope"]["ood_score"] <= ok["scope"]["threshold"] == 1.0
    assert refused["scope"]["in_scope"] is False and "HIP" in refused["scope"]["reason"]
    assert refused["scope"]["ood_score"] > 0 and len(refused["findings"]) == 5  # scores kept, flagged

    csv_out = tmp_path / "out.csv"
    assert predict_command([str(hip)], fmt="csv", output=csv_out) == 0
    (row,) = csv.DictReader(csv_out.open(newline="", encoding="utf-8"))
    assert row["scope_in_scope"] == "False" and "HIP" in row["scope_reason"]
