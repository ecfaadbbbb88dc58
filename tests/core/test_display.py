"""The display path: DICOM windowing formulas, VOI LUT, default window, uint8 output."""

from __future__ import annotations

import numpy as np
import pytest

from kdviewer.core.display import (
    DisplayRenderer,
    apply_voi_lut,
    apply_window,
    default_window,
    full_range_window,
    to_display_uint8,
    window_bounds,
    window_from_bounds,
)
from kdviewer.core.image import ImageMetadata, LoadedImage, Window


def _image(pixels, windows=(), voi_lut=None) -> LoadedImage:
    pixels = np.asarray(pixels, dtype=np.float32)
    return LoadedImage(
        path="mem",
        pixels=pixels,
        value_range=(float(pixels.min()), float(pixels.max())),
        metadata=ImageMetadata(source_format="DICOM", rows=pixels.shape[0], cols=pixels.shape[1]),
        windows=tuple(windows),
        voi_lut=voi_lut,
    )


def test_linear_window_matches_the_dicom_formula():
    # c = 100, w = 21: linear between c - 0.5 - 10 = 89.5 and c - 0.5 + 10 = 109.5
    x = np.array([[0, 89.5, 90, 99.5, 109.5, 110, 1e6]], np.float32)
    y = apply_window(x, 100, 21)
    assert y.dtype == np.uint8 and y.shape == x.shape
    expected = np.clip(((x.astype(np.float64) - 99.5) / 20 + 0.5), 0, 1) * 255
    np.testing.assert_array_equal(y, np.rint(expected).astype(np.uint8))
    assert (y[0, 0], y[0, 3], y[0, -1]) == (0, 128, 255)


def test_linear_window_width_one_is_a_threshold():
    np.testing.assert_array_equal(apply_window(np.array([9, 9.5, 10, 11.0]), 10, 1), [0, 0, 255, 255])


def test_linear_exact_and_sigmoid():
    x = np.array([0.0, 50.0, 100.0, 150.0, 200.0])
    np.testing.assert_array_equal(apply_window(x, 100, 100, "LINEAR_EXACT"), [0, 0, 128, 255, 255])
    s = apply_window(x, 100, 100, "SIGMOID")
    assert s[2] == 128 and np.all(np.diff(s.astype(int)) > 0)
    np.testing.assert_array_equal(apply_window(np.array([-1e9, 1e9]), 0, 1, "SIGMOID"), [0, 255])


@pytest.mark.parametrize(("width", "function"), [(0.5, "LINEAR"), (0, "LINEAR_EXACT"), (-1, "SIGMOID")])
def test_invalid_width_raises(width, function):
    with pytest.raises(ValueError):
        apply_window(np.zeros((2, 2)), 0, width, function)


def test_unknown_function_raises():
    with pytest.raises(ValueError):
        apply_window(np.zeros((2, 2)), 0, 10, "GAMMA")


def test_apply_voi_lut_looks_up_and_clamps():
    inputs = np.arange(10, 20, dtype=np.float32)
    outputs = np.linspace(0, 1, 10, dtype=np.float32) ** 2
    x = np.array([[0, 10, 15, 19, 100]], np.float32)
    y = apply_voi_lut(x, (inputs, outputs))
    expected = np.rint(np.array([0, 0, outputs[5], 1, 1]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(y[0], expected)


def test_full_range_window_maps_min_to_black_and_max_to_white():
    for lo, hi in [(0, 255), (-1024, 3071), (6288, 31893), (0.0, 1.0)]:
        w = full_range_window((lo, hi))
        y = apply_window(np.array([lo, (lo + hi) / 2, hi], np.float32), w.center, w.width)
        assert (y[0], y[2]) == (0, 255) and 120 <= y[1] <= 135


def test_default_window_prefers_the_file_preset():
    preset = Window(40, 400, "file preset 1")
    assert default_window(_image([[0, 1000]], windows=[preset, Window(1, 2)])) == preset
    w = default_window(_image([[-5, 1000]]))
    assert w.explanation == "full range"
    np.testing.assert_array_equal(to_display_uint8(_image([[-5, 1000]])), [[0, 255]])


def test_to_display_uint8_uses_voi_lut_unless_a_window_is_given():
    lut = (np.array([0, 1, 2, 3], np.float32), np.array([1, 0.5, 0.25, 0], np.float32))
    img = _image([[0, 1, 2, 3]], windows=[Window(1.5, 4)], voi_lut=lut)
    np.testing.assert_array_equal(to_display_uint8(img), [[255, 128, 64, 0]])
    np.testing.assert_array_equal(to_display_uint8(img, Window(1.5, 4)), apply_window(img.pixels, 1.5, 4))


def test_display_does_not_modify_the_image():
    img = _image(np.arange(12).reshape(3, 4))
    before = img.pixels.copy()
    to_display_uint8(img)
    to_display_uint8(img, Window(5, 3, function="SIGMOID"))
    np.testing.assert_array_equal(img.pixels, before)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize(("center", "width"), [(1000.0, 800.0), (2047.5, 4096.0), (300.0, 2.0)])
def test_windowing_agrees_with_pydicom(function, center, width):
    """pydicom's apply_windowing (PS3.3 C.11.2.1.2 into the stored range) is the reference."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing

    ds = Dataset()
    ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation = 12, 0, "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function
    stored = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)
    reference = apply_windowing(stored.astype(np.float64), ds)
    expected = np.rint((reference - 0.0) / 4095.0 * 255.0)
    ours = apply_window(stored.astype(np.float32), center, width, function)
    # float32 here against float64 there: a value exactly between two grey levels may round apart
    assert np.abs(ours.astype(int) - expected).max() <= 1
    assert np.mean(ours == expected) > 0.99


@pytest.mark.parametrize(
    "window",
    [Window(1000, 800), Window(1000, 800, function="SIGMOID"), Window(5, 3, function="LINEAR_EXACT"), None],
)
def test_renderer_equals_the_direct_computation(window):
    """The view's renderer looks values up for integer pixels: the very same result."""
    rng = np.random.default_rng(1)
    lut = (np.arange(0, 4096, 16, dtype=np.float32), np.linspace(0, 1, 256, dtype=np.float32) ** 0.5)
    img = _image(rng.integers(-20, 4000, size=(40, 30)).astype(np.float32), voi_lut=lut)
    renderer = DisplayRenderer(img)
    first = renderer.render(window, voi_lut=window is None)  # direct
    second = renderer.render(window, voi_lut=window is None)  # looked up
    direct = (
        apply_voi_lut(img.pixels, lut)
        if window is None
        else apply_window(img.pixels, window.center, window.width, window.function)
    )
    np.testing.assert_array_equal(first, direct)
    np.testing.assert_array_equal(second, direct)
    assert renderer._index is not None  # the lookup was used


def test_renderer_on_fractional_pixels_computes_directly():
    img = _image(np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4))
    renderer = DisplayRenderer(img)
    for _ in range(2):
        np.testing.assert_array_equal(
            renderer.render(Window(0.5, 0.5, function="LINEAR_EXACT")),
            apply_window(img.pixels, 0.5, 0.5, "LINEAR_EXACT"),
        )
    assert renderer._index is None


def test_window_bounds_and_custom_windows():
    assert window_bounds(Window(100, 21)) == (89.5, 109.5)
    assert window_bounds(Window(100, 20, function="SIGMOID")) == (90.0, 110.0)
    w = window_from_bounds(110, 90)
    assert (w.center, w.width, w.function, w.explanation) == (100.0, 20.0, "LINEAR_EXACT", "custom")
    assert window_bounds(w) == (90.0, 110.0)
