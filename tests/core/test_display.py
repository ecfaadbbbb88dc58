"""The display path: DICOM windowing formulas, VOI LUT, default window, uint8 output."""

from __future__ import annotations

import numpy as np
import pytest

from kdviewer.core.display import (
    apply_voi_lut,
    apply_window,
    default_window,
    full_range_window,
    to_display_uint8,
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
