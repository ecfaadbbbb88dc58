"""One preprocessing path: the same picture gives the same model input whatever file it came in.

PNG vs DICOM (8-bit NIH PNG -> 16-bit scaled DICOM; synthetic 16-bit PNG -> rescaled 12-bit
MONOCHROME1 JPEG 2000), MONOCHROME1 vs MONOCHROME2, window presets ignored, output
shape/dtype/normalisation.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kdviewer.core.imageio import read_image
from kdviewer.core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputSpec,
    image_to_model_input,
    scale_and_resize,
)
from tests.core import dicom_factory as fac

SPEC = InputSpec()
TOL = 1e-4  # in normalised units (1/std ~ 4.4 per unit of [0, 1] grey)


@pytest.fixture(scope="module")
def nih_png(nih_dir):
    path = sorted((nih_dir / "images").glob("*.png"))[0]
    return path, np.asarray(Image.open(path))


def _tensor(path):
    return image_to_model_input(read_image(path), SPEC)


@pytest.mark.parametrize(
    ("photometric", "ts"),
    [("MONOCHROME2", "explicit_le"), ("MONOCHROME1", "explicit_le"), ("MONOCHROME2", "j2k_lossless")],
)
def test_nih_png_and_its_16bit_dicom_give_the_same_tensor(tmp_path, nih_png, photometric, ts):
    png_path, grey = nih_png
    assert grey.dtype == np.uint8 and grey.ndim == 2
    stored = grey.astype(np.uint16) * 257  # 0..255 -> 0..65535
    if photometric == "MONOCHROME1":
        stored = 65535 - stored
    ds = fac.make_dataset(stored, photometric=photometric, bits_stored=16, modality="DX")
    dcm = fac.write(ds, tmp_path / "nih.dcm", ts)
    a, b = _tensor(png_path), _tensor(dcm)
    assert a.shape == b.shape == (3, SPEC.size, SPEC.size)
    np.testing.assert_allclose(a, b, atol=TOL)


def _synthetic_picture() -> np.ndarray:
    """A chest-like 16-bit test picture: a bright frame (bone) around two dark ovals (lungs)."""
    y, x = np.mgrid[0:300, 0:260].astype(np.float64)
    picture = 40000 - 60 * np.abs(x - 130)
    for cx in (80, 180):
        lung = ((x - cx) / 45) ** 2 + ((y - 150) / 100) ** 2 < 1
        picture[lung] -= 25000
    picture += 2000 * np.sin(y / 17.0)
    return np.round(picture).astype(np.uint16)


def test_synthetic_png_and_rescaled_monochrome1_j2k_give_the_same_tensor(tmp_path):
    picture = _synthetic_picture()
    Image.fromarray(picture).save(tmp_path / "s.png")
    # The DICOM stores the same picture as 12-bit MONOCHROME1 with slope 16, intercept -3000,
    # so its values are an affine image of the PNG's (bone bright after inversion).
    lo = int(picture.min())
    stored12 = np.round((picture.astype(np.float64) - lo) / 16).astype(np.uint16)
    assert stored12.max() <= 4095
    ds = fac.make_dataset(4095 - stored12, photometric="MONOCHROME1", bits_stored=12, rescale=(16.0, -3000.0))
    dcm = fac.write(ds, tmp_path / "s.dcm", "j2k_lossless")
    quantised = (stored12.astype(np.float64) * 16 + lo).astype(np.float32)  # what 12 bits can hold
    Image.fromarray(quantised.astype(np.uint16)).save(tmp_path / "q.png")
    np.testing.assert_allclose(_tensor(tmp_path / "q.png"), _tensor(dcm), atol=TOL)
    # and against the unquantised PNG: within 12-bit quantisation (16/span of the range)
    span = float(picture.max() - picture.min())
    step = 16 / span / min(IMAGENET_STD)
    np.testing.assert_allclose(_tensor(tmp_path / "s.png"), _tensor(dcm), atol=step)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_monochrome1_and_monochrome2_of_the_same_picture_give_the_same_tensor(tmp_path, bits):
    top = 2**bits - 1
    picture = np.round(_synthetic_picture() / 65535.0 * top).astype(np.uint8 if bits == 8 else np.uint16)
    mono2 = fac.write(fac.make_dataset(picture, bits_stored=bits), tmp_path / "m2.dcm")
    inverted = (top - picture.astype(np.int64)).astype(picture.dtype)
    ds = fac.make_dataset(inverted, photometric="MONOCHROME1", bits_stored=bits)
    mono1 = fac.write(ds, tmp_path / "m1.dcm")
    np.testing.assert_allclose(_tensor(mono1), _tensor(mono2), atol=TOL)


def test_window_presets_do_not_change_the_model_input(tmp_path):
    picture = _synthetic_picture() // 16
    plain = fac.write(fac.make_dataset(picture, bits_stored=12), tmp_path / "plain.dcm")
    windowed = fac.write(fac.make_dataset(picture, bits_stored=12, windows=[(300, 50)]), tmp_path / "win.dcm")
    np.testing.assert_array_equal(_tensor(plain), _tensor(windowed))


def test_output_shape_dtype_and_normalisation(tmp_path):
    picture = _synthetic_picture()
    Image.fromarray(picture).save(tmp_path / "s.png")
    t = _tensor(tmp_path / "s.png")
    assert t.shape == (3, 224, 224) and t.dtype == np.float32
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)
    grey01 = t * std + mean
    # grey replicated to 3 channels, scaled from the full range into [0, 1]
    np.testing.assert_allclose(grey01[0], grey01[1], atol=1e-5)
    np.testing.assert_allclose(grey01[0], grey01[2], atol=1e-5)
    assert grey01.min() >= -1e-5 and grey01.max() <= 1 + 1e-5
    assert grey01.min() < 0.02 and grey01.max() > 0.98
    # brighter in the file is brighter in the tensor: the lungs are darker than the frame
    assert grey01[0, 112, 62] < grey01[0, 112, 112]


def test_constant_image_gives_zero_grey(tmp_path):
    Image.fromarray(np.full((50, 40), 77, np.uint8)).save(tmp_path / "c.png")
    t = _tensor(tmp_path / "c.png")
    expected = (-np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)).reshape(3, 1, 1)
    np.testing.assert_allclose(t, np.broadcast_to(expected, t.shape), atol=1e-5)


def test_resize_then_scale_matches_a_fair_resampling_of_the_example():
    """The fast path (box reduction + bilinear, scaling on the small image) stays close to the
    textbook order (scale the full image, fair bilinear resampling)."""
    from PIL import Image as PILImage

    from kdviewer.core.imageio import read_image
    from kdviewer.core.resources import example_image

    image = read_image(example_image())
    spec = InputSpec()
    fast = scale_and_resize(image.pixels, spec, image.value_range)
    lo, hi = image.value_range
    full01 = ((image.pixels - lo) / (hi - lo)).astype(np.float32)
    fair = np.asarray(
        PILImage.fromarray(full01, mode="F").resize((spec.size, spec.size), PILImage.Resampling.BILINEAR),
        dtype=np.float32,
    )
    diff = np.abs(fast - fair)
    assert diff.mean() < 1e-3
    assert diff.max() < 0.05
    # without the reduction step the two orders agree to float rounding
    exact = scale_and_resize(image.pixels, InputSpec(reducing_gap=None), image.value_range)
    np.testing.assert_allclose(exact, np.clip(fair, 0, 1), atol=1e-5)


def _pil_resize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The reference: PIL's own ``Image.resize`` with the card's filter and ``reducing_gap``."""
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F")
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[spec.resample]
    small = img.resize((spec.size, spec.size), resample, reducing_gap=spec.reducing_gap)
    return np.asarray(small, np.float32)


RESIZE_TOL = 2e-5  # of the value range: float32 sums against PIL's double-precision ones


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec(),
        InputSpec(reducing_gap=None),
        InputSpec(reducing_gap=1.0),
        InputSpec(resample="bicubic"),
        InputSpec(size=97, reducing_gap=3.0),
    ],
    ids=["card", "no-gap", "gap1", "bicubic", "odd-size"],
)
@pytest.mark.parametrize(
    "shape",
    [(1024, 1024), (977, 921), (1955, 1841), (3000, 2500), (450, 1201), (2000, 300), (224, 224), (100, 60)],
)
def test_fast_resize_equals_pils(spec, shape):
    """The numpy box reduction + banded filter equal PIL's resize (partial edge blocks included)."""
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 4096, size=shape).astype(np.float32)
    got = scale_and_resize(pixels, spec, (0.0, 4095.0))
    same_size = shape == (spec.size, spec.size)
    want = pixels / 4095 if same_size else np.clip(_pil_resize(pixels, spec) / 4095.0, 0, 1)
    np.testing.assert_allclose(got, want, atol=RESIZE_TOL, rtol=0)


def test_fast_resize_equals_pils_on_real_images(nih_dir, dicom_dir):
    """Equal to PIL's resize on real radiographs: NIH PNGs and the DICOM corpus' chest images."""
    import csv

    paths = sorted((nih_dir / "images").glob("*.png"))[:5]
    with open(dicom_dir / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["decoded"] == "ok" and r["body_part"] == "CHEST"]
    paths += [dicom_dir / r["file"] for r in rows[:8]]
    checked = 0
    for path in paths:
        image = read_image(path)
        lo, hi = image.value_range
        got = scale_and_resize(image.pixels, SPEC, image.value_range)
        want = np.clip((_pil_resize(image.pixels, SPEC) - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(got, want, atol=RESIZE_TOL, rtol=0, err_msg=str(path))
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float64, "strided", "fortran"])
@pytest.mark.parametrize("shape", [(1031, 1029), (300, 200), (2000, 300), (90, 700)])
def test_other_pixel_types_give_the_float32_result(dtype, shape):
    """Integer and float64 pixels (cast batch of rows by batch of rows, never copied whole) and
    float32 pixels that are not in C order give the result of C-ordered float32 pixels."""
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if dtype in (np.uint8, np.uint16, np.int16) else np.iinfo(np.uint16)
    values = rng.integers(info.min, info.max, size=shape, endpoint=True)
    want = scale_and_resize(values.astype(np.float32), SPEC, (float(info.min), float(info.max)))
    if dtype == "strided":  # every other column of a wider image
        wide = np.zeros((shape[0], 2 * shape[1]), np.float32)
        wide[:, ::2] = values
        pixels = wide[:, ::2]
    elif dtype == "fortran":
        pixels = np.asfortranarray(values, dtype=np.float32)
    else:
        pixels = values.astype(dtype)
    got = scale_and_resize(pixels, SPEC, (float(info.min), float(info.max)))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
@pytest.mark.parametrize(
    ("n", "factor", "out_size", "outputs", "max_window"),
    [(1024, 2, 224, 4, 256), (1024, 2, 224, 16, 1024), (1955, 4, 224, 4, 134), (3000, 6, 224, 4, 104),
     (300, 1, 224, 4, 300), (60, 1, 224, 16, 60), (5, 1, 97, 4, 1), (2000, 4, 224, 3, 40)],
)  # fmt: skip
def test_resize_plan_covers_the_banded_matrix(n, factor, out_size, outputs, max_window, resample):
    """The batched products (a common stride and window per batch) hold every nonzero weight of the
    resize matrix, inside the input, each window at most ``max_window`` long unless one product
    needs more: put back together, they are the matrix."""
    from kdviewer.core.preprocess import _resize_matrix, _resize_plan

    matrix = _resize_matrix(n, factor, out_size, resample)
    padded, batches = _resize_plan(n, factor, out_size, resample, outputs, max_window, False)
    assert padded % outputs == 0 and padded >= out_size
    rebuilt = np.zeros((padded, n))
    covered = 0
    for start, step, span, j0, weights in batches:
        g, c, k = weights.shape
        assert (c, k) == (outputs, span) and j0 == covered
        assert start >= 0 and start + step * (g - 1) + span <= n
        assert g == 1 or step * (g - 1) + span <= max_window
        for i in range(g):
            rebuilt[j0 + i * c : j0 + (i + 1) * c, start + i * step : start + i * step + span] += weights[i]
        covered += g * c
    assert covered == padded
    np.testing.assert_allclose(rebuilt[:out_size], matrix, atol=1e-7, rtol=1e-6)
    assert not rebuilt[out_size:].any()
    _, transposed = _resize_plan(n, factor, out_size, resample, outputs, max_window, True)
    for a, b in zip(batches, transposed, strict=True):
        np.testing.assert_array_equal(a.weights.transpose(0, 2, 1), b.weights)
