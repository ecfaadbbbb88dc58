"""Each class of hostile file is refused from its headers, in this process, before any big allocation.

These read in-process on purpose: were a check missing, the read would take minutes and
gigabytes here (the isolated reader's safety nets are tested in test_readpool.py and by the
fuzz test).
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from kdviewer.core import imageio
from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import MAX_DECODED_BYTES, MAX_SIDE, read_image
from tests.core import dicom_factory as fac
from tests.core import fuzz_cases as fc


def _refused(tmp_path, data: bytes, *fragments: str, suffix: str = ".dcm", **kwargs) -> str:
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(data)
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    assert info.value.path == str(path)
    for fragment in fragments:
        assert fragment in info.value.cause, info.value.cause
    return info.value.cause


@pytest.mark.parametrize("rows, cols", [(0, 60), (30000, 60), (30000, 30000), (65535, 65535)])
def test_jpeg_frame_header_that_disagrees_is_refused(tmp_path, rows, cols):
    data = fc._jpeg_dicom()
    sof = data.index(b"\xff\xc0", fc._pixel_data_at(data))
    data = fc._patch(data, sof + 5, ">HH", rows, cols)
    _refused(tmp_path, data, "JPEG")


def test_jpeg_ls_of_30000_squared_is_refused(tmp_path):
    data = fc._dicom("jpeg_ls_lossless")
    sof = data.index(b"\xff\xf7", fc._pixel_data_at(data))
    _refused(tmp_path, fc._patch(data, sof + 5, ">HH", 30000, 30000), "JPEG-LS codestream says 30000 x 30000")


@pytest.mark.parametrize("reduce_to", [None, 224])
def test_j2k_siz_that_lies_is_refused_before_either_decoder(tmp_path, reduce_to):
    data = fc._j2k_reducible()
    siz = data.index(b"\xff\x4f\xff\x51", fc._pixel_data_at(data)) + 4
    _refused(
        tmp_path,
        fc._patch(data, siz + 4, ">II", 30000, 30000),
        "JPEG 2000 codestream says",
        reduce_to=reduce_to,
    )
    tiles = fc._patch(data, siz + 4, ">IIIIII", 480, 512, 0, 0, 1, 1)  # 245760 tiles of one pixel
    _refused(tmp_path, tiles, "tiles", reduce_to=reduce_to)


def test_jp2_wrapped_codestream_is_checked(tmp_path):
    for seed in range(40):
        case = fc.j2k_siz(random.Random(seed))
        if case.name == "jp2-ihdr-30000x30000":
            _refused(tmp_path, case.data, "JP2 image header box")
            return
    pytest.fail("no JP2 case generated")


def test_rle_segment_table_is_checked(tmp_path):
    data = fc._dicom("rle", 64, 60, 12)
    at = fc._first_fragment_at(data)
    _refused(tmp_path, fc._patch(data, at, "<I", 15), "15 segment(s) where 2 are expected")
    _refused(tmp_path, fc._patch(data, at + 8, "<I", 2**32 - 1), "out of order or beyond")


def test_rle_decoder_panic_becomes_image_read_error(tmp_path):
    """pylibjpeg-rle panics (pyo3_runtime.PanicException, a BaseException) on this damaged 4x4 file."""
    data = bytearray(
        fac.encode(fac.make_dataset((np.arange(16) * 1000).reshape(4, 4).astype(np.uint16)), "rle")
    )
    data[fc._first_fragment_at(bytes(data)) + 89] = 0xD7
    _refused(tmp_path, bytes(data), "RLE Lossless")


def test_native_base_exceptions_are_caught_but_interrupts_are_not(tmp_path, monkeypatch):
    import pydicom.pixels

    class NativePanic(BaseException):
        pass

    def panic(*args, **kwargs):
        raise NativePanic("boom")

    path = fac.write(fac.make_dataset(fac.ramp()), tmp_path / "ok.dcm")
    monkeypatch.setattr(pydicom.pixels, "pixel_array", panic)
    with pytest.raises(ImageReadError, match="NativePanic: boom"):
        read_image(path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pydicom.pixels, "pixel_array", interrupt)
    with pytest.raises(KeyboardInterrupt):
        read_image(path)


def test_deflate_bomb_is_refused_while_inflating(tmp_path):
    cause = _refused(tmp_path, fc._deflate_bomb(400, "private"), "inflates to more than")
    assert str(MAX_DECODED_BYTES + imageio._DEFLATE_HEADER_ROOM) in cause


def test_decoded_bytes_not_pixels_are_limited(tmp_path):
    ds = fac.make_dataset(fac.ramp(8, 8))
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 8192, 8192, 3, 32
    _refused(tmp_path, fac.encode(ds), "decodes to 805306368 bytes")


@pytest.mark.parametrize("size", [(67108863, 1), (1, 67108863)])
def test_png_with_a_side_beyond_the_limit_is_refused(tmp_path, size):
    _refused(tmp_path, fc._constant_png(*size), f"limit of {MAX_SIDE} pixels", suffix=".png")


def test_png_colour_bomb_is_refused_by_bytes(tmp_path):
    # 9000 x 9000 = 81 Mi pixels, 16-bit RGBA: refused before Pillow decodes a row
    _refused(tmp_path, fc._constant_png(9000, 9000, 6, 16), "too large", suffix=".png", max_pixels=2**27)


def test_jpeg_file_with_hundreds_of_scans_is_refused(tmp_path):
    data = fc._jpeg_bytes(64, 60, progressive=True)
    sos, eoi = data.rindex(b"\xff\xda"), data.rindex(b"\xff\xd9")
    _refused(tmp_path, data[:sos] + data[sos:eoi] * 600 + data[eoi:], "more than 500 scans", suffix=".jpg")


@pytest.mark.parametrize("slope, intercept", [("NaN", "0"), ("1", "inf"), ("3e38", "0")])
def test_non_finite_rescale_is_an_error(tmp_path, slope, intercept):
    _refused(tmp_path, fc.rescale_file(slope, intercept), "finite")


def test_too_many_elements_and_too_deep_sequences_are_refused(tmp_path):
    _refused(tmp_path, fc._many_elements(30_000), "too many DICOM data elements")
    base = fc._dicom("explicit_le", 8, 8, 8)
    pix = fc._pixel_data_at(base)
    _refused(tmp_path, base[:pix] + fc._nested(40) + base[pix:], "nested more than 32")


def test_an_element_longer_than_the_file_allocates_nothing(tmp_path):
    base = fc._dicom("explicit_le", 8, 8, 8)
    pix = fc._pixel_data_at(base)
    data = base[:pix] + struct.pack("<HH2sHI", 0x0009, 0x1001, b"OB", 0, 2**32 - 2) + base[pix:]
    cause = _refused(tmp_path, data)
    assert "memory" not in cause


def test_invalid_values_are_reported_without_them(tmp_path, capfd, caplog):
    ds = fac.make_dataset(fac.ramp(), PatientName="Secret^Name")
    path = fac.write(ds, tmp_path / "uid.dcm")
    data = path.read_bytes()
    uid = ds.StudyInstanceUID.encode()
    path.write_bytes(data.replace(uid, b"SECRET-" + uid[7:]))
    image = read_image(path)
    assert "invalid value for StudyInstanceUID (UI)" in image.warnings
    out, err = capfd.readouterr()
    logged = " ".join(r.getMessage() for r in caplog.records)
    for text in (out, err, logged, " ".join(image.warnings)):
        assert "SECRET" not in text
