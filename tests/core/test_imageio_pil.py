"""read_image on PNG (8/16-bit, grey, RGB, RGBA, palette, LA, 1-bit) and JPEG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import read_image
from tests.core.dicom_factory import ramp


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _colour() -> np.ndarray:
    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[..., 0] = ramp(40, 30, 0, 255, np.uint8)
    rgb[..., 1] = 60
    rgb[5:15, 5:15, 2] = 200
    return rgb


def test_png_8bit_grey(tmp_path):
    grey = ramp(40, 30, 3, 250, np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(img.pixels, grey.astype(np.float32))
    assert img.pixels.dtype == np.float32
    assert img.value_range == (3.0, 250.0)
    md = img.metadata
    assert (md.source_format, md.photometric, md.bits_stored) == ("PNG", "MONOCHROME2", 8)
    assert md.lossy_compression is False
    assert img.warnings == () and img.windows == () and img.dataset is None


def test_png_16bit_grey_keeps_full_precision(tmp_path):
    grey = ramp(40, 30, 100, 60000, np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(img.pixels, grey.astype(np.float32))
    assert img.metadata.bits_stored == 16
    assert img.value_range == (100.0, 60000.0)


def test_png_1bit(tmp_path):
    mask = ramp(40, 30, 0, 1, np.uint8).astype(bool)
    Image.fromarray(mask).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png").pixels, mask * 255.0)


def test_png_rgb_to_grey_with_warning(tmp_path):
    rgb = _colour()
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = read_image(tmp_path / "c.png")
    np.testing.assert_allclose(img.pixels, _luma(rgb), atol=1e-3)
    assert img.metadata.photometric == "RGB"
    assert any("colour" in w and "discarded" in w for w in img.warnings)


def test_png_rgb_with_identical_channels_says_nothing_lost(tmp_path):
    grey = ramp(40, 30, 0, 255, np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "c.png")
    img = read_image(tmp_path / "c.png")
    np.testing.assert_allclose(img.pixels, grey, atol=1e-3)
    assert any("nothing lost" in w for w in img.warnings)


def test_png_rgba_alpha_ignored_with_warning(tmp_path):
    rgba = np.dstack([_colour(), np.full((40, 30), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(img.pixels, _luma(rgba[..., :3]), atol=1e-3)
    assert any("transparency" in w for w in img.warnings)
    assert any("colour" in w for w in img.warnings)


def test_png_la(tmp_path):
    grey = ramp(40, 30, 0, 255, np.uint8)
    Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), mode="LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(img.pixels, grey)
    assert img.warnings == ()  # fully opaque: nothing ignored


@pytest.mark.parametrize("coloured", [False, True], ids=["grey_palette", "colour_palette"])
def test_png_palette(tmp_path, coloured):
    idx = ramp(40, 30, 0, 15, np.uint8)
    levels = np.arange(16, dtype=np.uint8) * 17
    palette = np.stack([levels, levels[::-1] if coloured else levels, levels], axis=-1)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette.flatten().tolist())
    im.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(img.pixels, _luma(palette[idx]), atol=1e-3)
    assert img.metadata.photometric == "PALETTE COLOR"
    assert any("palette" in w and ("discarded" if coloured else "nothing lost") in w for w in img.warnings)


def test_jpeg_grey_and_colour(tmp_path):
    grey = ramp(64, 48, 0, 255, np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    img = read_image(tmp_path / "g.jpg")
    assert img.metadata.source_format == "JPEG" and img.metadata.lossy_compression is True
    assert np.abs(img.pixels - grey).max() <= 8  # lossy
    assert img.warnings == ()
    rgb = np.zeros((64, 48, 3), np.uint8)
    rgb[..., 0] = grey
    Image.fromarray(rgb).save(tmp_path / "c.jpeg", quality=95)
    img = read_image(tmp_path / "c.jpeg")
    assert np.abs(img.pixels - _luma(rgb)).mean() < 3
    assert any("colour" in w for w in img.warnings)


def test_format_detected_by_content_not_extension(tmp_path):
    grey = ramp(20, 10, 0, 255, np.uint8)
    Image.fromarray(grey).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "really_a_png.dcm")
    img = read_image(tmp_path / "really_a_png.dcm")
    assert img.metadata.source_format == "PNG"
    Image.fromarray(grey).save(tmp_path / "y.jpg")
    (tmp_path / "y.jpg").rename(tmp_path / "noext")
    assert read_image(tmp_path / "noext").metadata.source_format == "JPEG"


def test_exif_orientation_is_applied(tmp_path):
    grey = np.zeros((20, 10), np.uint8)
    grey[0, :] = 255  # top row white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(grey).save(tmp_path / "o.jpg", exif=exif, quality=100)
    img = read_image(tmp_path / "o.jpg")
    assert img.shape == (10, 20)
    assert img.pixels[:, -1].mean() > 200  # the white top row is now the right column


@pytest.mark.parametrize("fmt", ["png", "jpg"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_png_and_jpeg(tmp_path, fmt, keep):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / f"f.{fmt}")
    data = (tmp_path / f"f.{fmt}").read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError) as info:
        read_image(cut)
    assert str(cut) in str(info.value)
