"""Heat maps: the fast CAM path equals the grad-cam library's Grad-CAM; geometry, location, hooks."""

import numpy as np
import pytest
import torch
from torch import nn

from kdviewer.core import explain
from kdviewer.core.engine import InferenceEngine
from kdviewer.core.modelcard import ModelCard
from kdviewer.core.models import FindingsNet
from kdviewer.core.preprocess import InputSpec, image_to_model_input
from kdviewer.core.runtime import state_sha256
from kdviewer.core.untrained import untrained_model
from tests.core import engine_helpers as H


def _hook_count(model):
    return sum(
        len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()
    )


def _x(seed=0):
    img = H.grey_image((260, 240), blob=(100, 150))
    x = image_to_model_input(img, InputSpec())[None]
    return x + 0.1 * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)


def _features(model, x):
    with torch.inference_mode():
        return model.forward_features(torch.from_numpy(x)).numpy()[0]


# ---------------------------------------------------------------- upsampling and normalisation


@pytest.mark.parametrize(
    "src,dst", [((7, 7), (224, 224)), ((7, 7), (300, 170)), ((7, 5), (13, 9)), ((4, 6), (4, 6))]
)
def test_upsample_matches_opencv_bilinear_then_minmax(src, dst):
    import cv2

    cams = np.random.default_rng(1).random((3, *src)).astype(np.float32)
    got = explain.upsample_normalized(cams, dst)
    ref = np.stack([cv2.resize(c, dst[::-1], interpolation=cv2.INTER_LINEAR) for c in cams])
    lo, hi = ref.min(axis=(1, 2), keepdims=True), ref.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got, (ref - lo) / (hi - lo), atol=2e-6)
    assert got.shape == (3, *dst) and got.dtype == np.float32
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_bilinear_matrix_rows_are_convex():
    m = explain.bilinear_matrix(100, 7)
    assert np.allclose(m.sum(axis=1), 1.0) and (m >= 0).all()
    assert (np.count_nonzero(m, axis=1) <= 2).all()


def test_constant_map_becomes_zeros_and_a_hot_cell_is_not_inverted():
    out = explain.upsample_normalized(np.full((1, 7, 7), 3.0, np.float32), (50, 40))
    assert np.all(out == 0.0)
    cam = np.zeros((1, 7, 7), np.float32)
    cam[0, 1, 5] = 2.0
    out = explain.upsample_normalized(cam, (70, 70))[0]
    r, c = np.unravel_index(out.argmax(), out.shape)
    assert (r // 10, c // 10) == (1, 5)
    assert out.max() == pytest.approx(1.0, abs=1e-5) and out.min() == pytest.approx(0.0, abs=1e-5)


# ---------------------------------------------------------------- fast path == library Grad-CAM


def _library_raw_gradcam(model, x, classes):
    """The library's Grad-CAM at the feature layer before its normalisation and upsampling, and
    its final maps (normalised, upsampled to the input size)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=model, target_layers=[model.cam_layer])
    try:
        inp = torch.from_numpy(np.repeat(x, len(classes), axis=0))
        maps = cam(input_tensor=inp, targets=[ClassifierOutputTarget(c) for c in classes])
        acts = cam.activations_and_grads.activations[0].numpy()
        grads = cam.activations_and_grads.gradients[0].numpy()
        w = cam.get_cam_weights(inp, model.cam_layer, None, acts, grads)
        return np.maximum((w[:, :, None, None] * acts).sum(axis=1), 0), maps
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name,classes", [("student", [0, 1, 2, 3, 4]), ("teacher", [1, 4])])
def test_fast_cam_equals_library_gradcam(name, classes):
    model = H.engine(name).model
    x = _x()
    feats = _features(model, x)
    weights = explain.cam_weights(model)
    fast_raw = explain.class_activation_maps(feats, weights, classes)
    lib_raw, lib = _library_raw_gradcam(model, x, classes)
    # at the post-activation feature layer, before any normalisation or upsampling
    scale = float(np.abs(lib_raw).max())
    assert scale > 0
    np.testing.assert_allclose(fast_raw, lib_raw, rtol=0, atol=1e-4 * scale)
    # after the library's own upsampling to the input size and normalisation
    fast = explain.upsample_normalized(fast_raw, (224, 224))
    np.testing.assert_allclose(fast, lib, rtol=0, atol=1e-4)
    if name == "student":  # our batched wrapper gives the library's maps too
        np.testing.assert_allclose(explain.library_cams(model, x, "gradcam", classes), lib, rtol=0, atol=1e-5)
    assert _hook_count(model) == 0


def test_library_methods_release_hooks_and_stay_in_range():
    model = untrained_model("mobilenet_v2")
    before = _hook_count(model)
    x = _x(1)
    for method in (*explain.CAM_METHODS, "gradcam"):  # every method, and one of them again
        maps = explain.library_cams(model, x, method, [1, 3] if method == "gradcam++" else [3])
        assert maps.shape[1:] == (224, 224) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert _hook_count(model) == before == 0
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(IndexError):  # errors propagate (the library's context manager would swallow them)
        explain.library_cams(model, x, "gradcam", [99])
    assert _hook_count(model) == 0


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="gradcam"):
        explain.check_method("scorecam")


# ---------------------------------------------------------------- location and geometry


def _blob_engine(runtime):
    """A constructed network whose heat maps must peak at a bright blob.

    features = one 32x32 convolution with stride 32 whose weights and bias undo the ImageNet
    normalisation and average the three channels: each of its 2 output channels is the mean grey
    value (in [0, 1]) of a 32x32 cell, a 7x7 map of local brightness; activation = ReLU; head =
    linear with all weights +1 and no bias. So CAM_c = sum_k A_k is twice the local brightness,
    largest in the cell that holds the blob, for every finding (and every gradient is positive,
    so the library's methods agree).
    """
    spec = InputSpec()
    conv = nn.Conv2d(3, 2, kernel_size=32, stride=32)
    head = nn.Linear(2, 5)
    with torch.no_grad():
        for c in range(3):
            conv.weight[:, c] = spec.std[c] / (3 * 32 * 32)
        conv.bias.fill_(sum(spec.mean) / 3)
        head.weight.fill_(1.0)
        head.bias.zero_()
    model = FindingsNet(nn.Sequential(conv), nn.ReLU(), head, "blobnet").eval()
    card = ModelCard(name="blob", architecture="blobnet", weights_file="", weights_sha256=state_sha256(model))
    return InferenceEngine(model, card, runtime=runtime)


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch-eager"])
@pytest.mark.parametrize("shape,blob", [((300, 200), (80, 140)), ((180, 260), (120, 50))])
def test_heatmap_peaks_at_the_blob_in_original_geometry(runtime, shape, blob):
    eng = _blob_engine(runtime)
    img = H.grey_image(shape, blob=blob)
    methods = ["gradcam"] if runtime == "onnxruntime" else list(explain.CAM_METHODS)
    for method in methods:
        pred = eng.predict(img, cam_method=method, measure_energy=False)
        assert set(pred.heatmaps) == set(pred.findings)
        for key, hm in pred.heatmaps.items():
            assert hm.shape == shape == img.shape, (method, key)
            r, c = np.unravel_index(int(np.argmax(hm)), hm.shape)
            # within one feature cell (the map's resolution is 7x7) of the blob's centre
            near = abs(r - blob[0]) <= shape[0] / 7 and abs(c - blob[1]) <= shape[1] / 7
            assert near, (method, key, (r, c))
            assert hm.min() >= 0 and hm.max() <= 1 and hm.max() > 0.99


def test_fast_and_library_gradcam_agree_in_original_geometry():
    eng = _blob_engine("torch-eager")
    img = H.grey_image((300, 200), blob=(80, 140))
    fast = eng.predict(img, cam_method="gradcam", measure_energy=False).heatmaps
    x = image_to_model_input(img, InputSpec())[None]
    lib = explain.upsample_normalized(explain.library_cams(eng.model, x, "gradcam"), img.shape)
    for i, key in enumerate(fast):
        # the library normalises at 224x224 first; the maps agree to interpolation accuracy
        assert np.abs(fast[key] - lib[i]).mean() < 0.02


def test_normalisation_is_the_same_with_its_matrices_cached():
    """The upsampling matrices are built once per geometry: repeated calls, with other geometries
    in between, give bit-identical maps, equal to a full float64 upsampling min-max normalised."""
    cams = np.random.default_rng(5).random((5, 7, 7)).astype(np.float32)
    first = explain.normalize_for_upsampling(cams, (1024, 1024))
    explain.normalize_for_upsampling(cams, (300, 170))
    explain.bilinear_matrix(1024, 7)[:] = 0.0  # a caller's copy: the cached one is not shared
    again = explain.normalize_for_upsampling(cams, (1024, 1024))
    np.testing.assert_array_equal(first, again)
    mh = explain.bilinear_matrix(1024, 7).astype(np.float64)
    full = mh @ cams.astype(np.float64) @ mh.T
    lo, hi = full.min(axis=(1, 2), keepdims=True), full.max(axis=(1, 2), keepdims=True)
    got = mh @ first.astype(np.float64) @ mh.T
    np.testing.assert_allclose(got, (full - lo) / (hi - lo), atol=2e-6)
    maps = explain.upsample_normalized(cams, (1024, 1024))
    np.testing.assert_allclose(maps, got, atol=2e-6)


def test_cams_for_all_classes_in_order_equal_those_asked_one_by_one():
    rng = np.random.default_rng(6)
    feats, weights = rng.random((64, 7, 7), dtype=np.float32), rng.standard_normal((5, 64)).astype(np.float32)
    every = explain.class_activation_maps(feats, weights, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(every, explain.class_activation_maps(feats, weights))
    for c in (4, 0, 2):
        np.testing.assert_allclose(explain.class_activation_maps(feats, weights, [c])[0], every[c], atol=1e-5)
    some = explain.class_activation_maps(feats, weights, [3, 1])
    np.testing.assert_allclose(some, every[[3, 1]], atol=1e-5)
