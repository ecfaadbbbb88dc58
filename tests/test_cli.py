"""`kdviewer predict` and `kdviewer info`, run in-process through the real entry point."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from kdviewer.cli import main
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.resources import example_image


@pytest.fixture()
def mixed_folder(tmp_path):
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 64), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    # A DICOM without extension (the built-in JPEG 2000 chest CR): detected by content.
    shutil.copy(example_image(), folder / "sub" / "IM0001")
    (folder / "broken.dcm").write_text("this is not a DICOM file\n")
    (folder / "empty.png").write_bytes(b"")
    return folder


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_folder_scores_readable_files_and_reports_the_rest(capsys, mixed_folder):
    code, out, err = _run(capsys, "predict", str(mixed_folder), "--format", "json")
    assert code == 1  # some files failed
    records = json.loads(out)
    scored = sorted(r["file"].removeprefix(str(mixed_folder) + "/") for r in records)
    assert scored == ["a.png", "sub/IM0001", "sub/b.jpg"]
    for r in records:
        assert r["model"] == "student"
        # every energy figure says how it was obtained; an estimate says so
        assert isinstance(r["energy_is_estimate"], bool) and r["energy_method"]
        assert r["energy_is_estimate"] == r["energy_method"].startswith("estimate")
        assert r["idle_power_w"] is not None and r["idle_power_w"] >= 0  # the baseline, shown separately
        assert len(r["weights_sha256"]) == 64
        assert set(r["findings"]) == set(FINDING_KEYS)
        for f in r["findings"].values():
            assert 0.0 <= f["score"] <= 1.0
            assert f["positive"] == (f["score"] >= f["threshold"])
        assert r["latency_ms"] > 0
    assert "broken.dcm" in err and "empty.png" in err
    assert "2 file(s) could not be scored" in err


def test_predict_csv_with_teacher(capsys, mixed_folder):
    code, out, err = _run(capsys, "predict", str(mixed_folder / "a.png"), "--teacher", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in rows] == ["student", "teacher"]
    assert rows[0]["architecture"] == "mobilenet_v2" and rows[1]["architecture"] == "densenet121"
    for k in FINDING_KEYS:
        assert 0.0 <= float(rows[0][f"{k}_score"]) <= 1.0


def test_predict_missing_path_fails(capsys, tmp_path):
    code, out, err = _run(capsys, "predict", str(tmp_path / "nope.dcm"))
    assert code == 1
    assert json.loads(out) == []
    assert err.count("nope.dcm: no such file") == 1
    assert "1 file(s) could not be scored" in err


def test_info_lists_versions_meter_and_threads(capsys):
    code, out, err = _run(capsys, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["versions"]["torch"]
    assert info["threads"]["engine"] >= 1
    # the paper's sizes: 6.96 M (teacher) and 2.23 M (student) parameters
    assert round(info["architectures"]["densenet121"]["parameters"] / 1e6, 2) == 6.96
    assert round(info["architectures"]["mobilenet_v2"]["parameters"] / 1e6, 2) == 2.23
    chosen = [m for m in info["power_meters"] if m["chosen"]]
    assert len(chosen) == 1
    assert all(m["reason"] for m in info["power_meters"])
