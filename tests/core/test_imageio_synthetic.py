"""read_image on synthetic DICOM: what the real corpus lacks, with expected pixel values.

Parametrised over photometric interpretation x bits stored x signedness x transfer syntax, plus
files without preamble / File Meta, Modality LUT Sequence, VOI LUT Sequence, window presets,
multi-frame and palette colour.
"""

from __future__ import annotations

import numpy as np
import pytest

from kdviewer.core.display import apply_voi_lut, apply_window, to_display_uint8
from kdviewer.core.imageio import decode_stored_pixels, is_image_file, read_dicom_dataset, read_image
from tests.core import dicom_factory as fac

BITS = [8, 10, 12, 15, 16]


def _full_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def _picture(bits: int, signed: bool) -> np.ndarray:
    lo, hi = _full_range(bits, signed)
    dtype = (np.int8 if signed else np.uint8) if bits == 8 else (np.int16 if signed else np.uint16)
    return fac.ramp(lo=lo, hi=hi, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("ts", list(fac.TRANSFER_SYNTAXES))
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_grey_matrix(tmp_path, photometric, bits, signed, ts):
    stored = _picture(bits, signed)
    ds = fac.make_dataset(stored, photometric=photometric, bits_stored=bits, signed=signed)
    path = fac.write(ds, tmp_path / "img.dcm", ts)
    img = read_image(path)
    lo, hi = _full_range(bits, signed)
    expected = stored.astype(np.float64)
    if photometric == "MONOCHROME1":
        expected = (lo + hi) - expected
    np.testing.assert_array_equal(img.pixels, expected.astype(np.float32))
    assert img.pixels.dtype == np.float32
    assert img.value_range == (float(expected.min()), float(expected.max()))
    md = img.metadata
    assert md.transfer_syntax_uid == str(fac.TRANSFER_SYNTAXES[ts])
    assert (md.photometric, md.bits_stored, md.rows, md.cols) == (photometric, bits, *stored.shape)
    assert img.warnings == ()


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_bone_is_bright_whatever_the_photometric(tmp_path, photometric):
    """The same anatomy stored either way reads to the same pixels."""
    picture = fac.ramp(lo=0, hi=4095)
    stored = picture if photometric == "MONOCHROME2" else 4095 - picture
    ds = fac.make_dataset(stored, photometric=photometric, bits_stored=12)
    img = read_image(fac.write(ds, tmp_path / "x.dcm"))
    np.testing.assert_array_equal(img.pixels, picture.astype(np.float32))


@pytest.mark.parametrize(
    ("preamble", "file_meta", "name"),
    [(False, True, "nopreamble.dcm"), (False, False, "bare_dataset"), (True, True, "image.bin")],
)
def test_without_preamble_or_file_meta(tmp_path, preamble, file_meta, name):
    stored = fac.ramp(lo=0, hi=1023)
    ds = fac.make_dataset(stored, bits_stored=10, photometric="MONOCHROME1")
    ts = "implicit_le" if not file_meta else "explicit_le"
    path = fac.write(ds, tmp_path / name, ts, preamble=preamble, file_meta=file_meta)
    assert is_image_file(path)
    img = read_image(path)
    np.testing.assert_array_equal(img.pixels, 1023.0 - stored)
    expected_ts = "1.2.840.10008.1.2" if not file_meta else "1.2.840.10008.1.2.1"
    assert img.metadata.transfer_syntax_uid == expected_ts


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_rescale_slope_intercept(tmp_path, photometric):
    stored = fac.ramp(lo=0, hi=4095)
    ds = fac.make_dataset(stored, bits_stored=12, rescale=(0.5, -1024.0), photometric=photometric)
    img = read_image(fac.write(ds, tmp_path / "r.dcm"))
    hu = stored * 0.5 - 1024.0
    if photometric == "MONOCHROME1":  # possible range -1024 .. 1023.5
        hu = (-1024.0 + 1023.5) - hu
    np.testing.assert_allclose(img.pixels, hu, atol=1e-4)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_modality_lut_sequence(tmp_path, photometric):
    stored = fac.ramp(lo=0, hi=255, dtype=np.uint8)
    table = 1000 + 3 * np.arange(256) + (np.arange(256) ** 2) // 64  # non-linear, 1000..2784
    ds = fac.make_dataset(stored, bits_stored=8, modality_lut=(0, table), photometric=photometric)
    img = read_image(fac.write(ds, tmp_path / "mlut.dcm"))
    expected = table[stored].astype(np.float64)
    if photometric == "MONOCHROME1":
        expected = (table.min() + table.max()) - expected
    np.testing.assert_array_equal(img.pixels, expected.astype(np.float32))


def test_window_presets_multi_valued_with_explanations(tmp_path):
    stored = fac.ramp(lo=0, hi=4095)
    ds = fac.make_dataset(
        stored,
        bits_stored=12,
        windows=[(2048, 4096), (1000, 500)],
        window_explanations=["FULL", "LUNG"],
    )
    img = read_image(fac.write(ds, tmp_path / "w.dcm"))
    got = [(w.center, w.width, w.explanation) for w in img.windows]
    assert got == [(2048, 4096, "FULL"), (1000, 500, "LUNG")]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_monochrome1_windows_display_like_the_dicom_presentation(tmp_path, function):
    """Window the inverted pixels with the mapped preset == window stored values, invert output."""
    stored = fac.ramp(lo=0, hi=4095)
    windows = [(1500, 1000), (3000.5, 37)]
    ds = fac.make_dataset(
        stored, bits_stored=12, photometric="MONOCHROME1", windows=windows, VOILUTFunction=function
    )
    img = read_image(fac.write(ds, tmp_path / "w1.dcm"))
    assert len(img.windows) == 2
    for (c, w), mapped in zip(windows, img.windows, strict=True):
        assert mapped.function == function and mapped.width == w
        assert mapped.center == 4095 - c + (1 if function == "LINEAR" else 0)
        presentation = 255 - apply_window(stored, c, w, function).astype(np.int16)
        ours = apply_window(img.pixels, mapped.center, mapped.width, mapped.function).astype(np.int16)
        assert np.abs(ours - presentation).max() <= 1  # rounding ties only


def test_invalid_window_width_is_ignored_with_warning(tmp_path):
    ds = fac.make_dataset(fac.ramp(), windows=[(100, 0), (128, 256)])
    img = read_image(fac.write(ds, tmp_path / "w.dcm"))
    assert [(w.center, w.width) for w in img.windows] == [(128, 256)]
    assert any("invalid width" in w for w in img.warnings)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_voi_lut_sequence(tmp_path, photometric):
    stored = fac.ramp(lo=0, hi=1023)
    lut = (np.clip(np.arange(1024) - 200, 0, 511) * 4095 // 511).astype(np.int64)  # 12-bit output
    ds = fac.make_dataset(stored, bits_stored=10, voi_lut=(0, lut, 12), photometric=photometric)
    img = read_image(fac.write(ds, tmp_path / "voi.dcm"))
    assert img.voi_lut is not None
    presentation = lut[stored] / 4095.0  # DICOM: VOI LUT on stored values, MONO1 inverts the output
    if photometric == "MONOCHROME1":
        presentation = 1.0 - presentation
    expected = np.rint(presentation * 255).astype(np.int16)
    np.testing.assert_array_equal(to_display_uint8(img).astype(np.int16), expected)
    np.testing.assert_array_equal(apply_voi_lut(img.pixels, img.voi_lut), to_display_uint8(img))


def test_multiframe_first_frame_with_warning(tmp_path):
    frames = np.stack([fac.ramp(lo=0, hi=255) + i for i in range(3)]).astype(np.uint16)
    ds = fac.make_dataset(frames, bits_stored=12)
    path = fac.write(ds, tmp_path / "mf.dcm", "rle")
    img = read_image(path)
    np.testing.assert_array_equal(img.pixels, frames[0])
    assert img.metadata.frames == 3
    assert any("multi-frame" in w for w in img.warnings)
    np.testing.assert_array_equal(decode_stored_pixels(read_dicom_dataset(path), frame=None), frames)
    np.testing.assert_array_equal(decode_stored_pixels(read_dicom_dataset(path), frame=2), frames[2])


def test_rgb_dicom_to_grey(tmp_path):
    rgb = np.zeros((72, 68, 3), np.uint8)
    rgb[..., 0] = fac.ramp(lo=0, hi=255, dtype=np.uint8)
    rgb[..., 1] = 100
    rgb[10:20, 10:20, 2] = 255
    ds = fac.make_dataset(rgb, photometric="RGB", modality="OT", sop_class=fac.SECONDARY_CAPTURE)
    img = read_image(fac.write(ds, tmp_path / "rgb.dcm"))
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(img.pixels, expected, atol=1e-3)
    assert any("RGB" in w and "discarded" in w for w in img.warnings)


def test_palette_colour_dicom_to_grey(tmp_path):
    idx = fac.ramp(lo=0, hi=255, dtype=np.uint8)
    red = np.arange(256, dtype=np.uint16) * 257
    green = (255 - np.arange(256, dtype=np.uint16)) * 257
    blue = np.full(256, 0x8080, dtype=np.uint16)
    ds = fac.make_dataset(idx, photometric="PALETTE COLOR", palette=(red, green, blue), modality="OT")
    img = read_image(fac.write(ds, tmp_path / "pal.dcm"))
    rgb = np.stack([red[idx], green[idx], blue[idx]], axis=-1).astype(np.float64)
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(img.pixels, expected, rtol=1e-5)
    assert any("PALETTE COLOR" in w for w in img.warnings)
