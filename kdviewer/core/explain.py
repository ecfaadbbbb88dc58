"""Heat maps: class activation maps from one forward pass, and the ``grad-cam`` library's methods.

Both networks end in global average pooling + one linear layer, so the gradient of logit ``c``
with respect to the post-activation feature map ``A`` is ``w_c / (h*w)`` at every position and
Grad-CAM at that layer reduces to ``ReLU(sum_k w_ck A_k) / (h*w)``: the class activation map. The
fast path (:func:`class_activation_maps`) therefore needs only the feature map that the forward
runtime already returns, for all findings at once. Other methods (Grad-CAM++, XGrad-CAM,
EigenCAM, LayerCAM, or the library's own Grad-CAM) run the eager PyTorch model with gradients
(:func:`library_cams`); their hooks are removed after every call.

Normalisation follows the library (min-max per map, after ReLU) with two deliberate choices: a
constant map becomes all zeros (never NaN, never inverted), and maps are min-max normalised
*after* upsampling to the original image geometry, computed exactly without a second pass over
the full-size map (see :func:`upsample_normalized`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kdviewer.core.extras import EXPLAIN_INSTALL, MissingExtraError, installed, torch_available

CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xgradcam", "eigencam", "layercam")
DEFAULT_CAM_METHOD = "gradcam"
# The first principal component of the feature map does not depend on the class asked for.
CLASS_AGNOSTIC_METHODS: frozenset[str] = frozenset({"eigencam"})
_FLAT = 1e-5  # relative span below which a map counts as constant
_MARGIN = 2.0**-21


def _library_classes() -> dict[str, type]:
    # the explain extra: absent from the light install, and seconds to import (torch) where present
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    class OrientedEigenCAM(EigenCAM):
        """EigenCAM whose principal component is oriented to agree with the summed activations.

        The sign of an SVD component is arbitrary; unoriented, the map can come out inverted
        (and then mostly zeroed by the ReLU).
        """

        def get_cam_image(
            self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth
        ):
            proj = get_2d_projection(activations)
            total = activations.sum(axis=1)
            for i in range(proj.shape[0]):
                p, t = proj[i].ravel(), total[i].ravel()
                if np.dot(p - p.mean(), t - t.mean()) < 0:
                    proj[i] = -proj[i]
            return proj

    return {
        "gradcam": GradCAM,
        "gradcam++": GradCAMPlusPlus,
        "xgradcam": XGradCAM,
        "eigencam": OrientedEigenCAM,
        "layercam": LayerCAM,
    }


def library_methods_available() -> bool:
    """Whether the methods other than the forward pass's Grad-CAM can run here: they need
    PyTorch and the ``grad-cam`` library (the ``explain`` extra), found without importing them."""
    return torch_available() and installed("pytorch_grad_cam")


def require_library_methods(method: str) -> None:
    """Raise :class:`~kdviewer.core.extras.MissingExtraError` naming ``method`` if it cannot run."""
    if not library_methods_available():
        raise MissingExtraError(
            f"the {method} heat map needs PyTorch and grad-cam, which this "
            f"installation lacks; install them with: {EXPLAIN_INSTALL}"
        )


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`CAM_METHODS`, else raise ValueError."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown heat map method {method!r}; known: {', '.join(CAM_METHODS)}")
    return method


def cam_weights(model) -> np.ndarray:
    """The head's weight matrix ``(findings, channels)`` as float32 (fast-path CAM weights)."""
    return model.head_linear.weight.detach().cpu().numpy().astype(np.float32, copy=True)


def class_activation_maps(features: np.ndarray, weights: np.ndarray, classes=None) -> np.ndarray:
    """Grad-CAM at the post-activation feature layer of a GAP + linear head, for many classes.

    ``features`` is one image's feature map ``(K, h, w)``; ``weights`` the head's ``(F, K)``;
    ``classes`` the row indices wanted (default all). Returns ``ReLU(sum_k w_ck A_k) / (h*w)`` with
    shape ``(len(classes), h, w)``, not normalised: exactly the library's Grad-CAM map before its
    normalisation and upsampling.
    """
    k, h, w = features.shape
    wsel = weights
    if classes is not None and [int(c) for c in classes] != list(range(len(weights))):
        wsel = weights[np.asarray(classes, dtype=np.intp)]  # (all of them, in order: no copy)
    cams = (wsel @ features.reshape(k, h * w)).reshape(-1, h, w)
    cams *= 1.0 / (h * w)
    return np.maximum(cams, 0.0, out=cams)


def bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear-interpolation matrix ``(n_out, n_in)`` with half-pixel centres and clamped borders.

    The same sampling as OpenCV's ``INTER_LINEAR`` resize (which the ``grad-cam`` library uses)
    and PIL's bilinear upsampling. Every row is a convex combination of two neighbours.
    """
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if n_in == 1:
        m[:, 0] = 1.0
        return m.astype(np.float32)
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.clip(np.floor(src).astype(np.intp), 0, n_in - 2)
    frac = np.clip(src - i0, 0.0, 1.0)
    rows = np.arange(n_out)
    m[rows, i0] = 1.0 - frac
    m[rows, i0 + 1] += frac
    return m.astype(np.float32)


@lru_cache(maxsize=64)
def _upsampling(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bilinear_matrix` ``(n_out, n_in)`` and, in float64, its rows at the candidate extremes
    (:func:`_extreme_rows`), both read-only: built once per (output size, map size) instead of on
    every prediction (they were most of the heat map stage)."""
    m = bilinear_matrix(n_out, n_in)
    probe = m[_extreme_rows(m)].astype(np.float64)
    m.flags.writeable = False
    probe.flags.writeable = False
    return m, probe


def _extreme_rows(m: np.ndarray) -> np.ndarray:
    """Output rows where a bilinear upsample can reach its extremes: the first and last row of
    each run sharing the same pair of source rows (values are linear in the weight inside a run)."""
    lead = np.argmax(m > 0, axis=1)  # first source index with weight: constant within a run
    change = np.flatnonzero(np.diff(lead)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change - 1, [m.shape[0] - 1]))
    return np.unique(np.concatenate((starts, ends)))


def normalize_for_upsampling(cams: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Min-max normalise low-resolution maps ``(n, h, w)`` so their bilinear upsampling to ``shape``
    spans [0, 1] exactly.

    Because interpolation weights sum to one, normalising commutes with upsampling; the extremes of
    the upsampled map are found exactly on a handful of candidate rows and columns (a bilinear
    function takes its extremes over a rectangle of samples at the corners), so this works on the
    small maps only. A constant map becomes zeros. Returns float32 ``(n, h, w)``.
    """
    cams = np.asarray(cams, dtype=np.float32)
    n, h, w = cams.shape
    big_h, big_w = int(shape[0]), int(shape[1])
    ph, pw = _upsampling(big_h, h)[1], _upsampling(big_w, w)[1]
    # values at every candidate extreme, (n, |rh|, |rw|), in float64 so a constant map stays constant
    probe = (ph @ cams.astype(np.float64) @ pw.T).reshape(n, -1)
    lo, hi = probe.min(axis=1), probe.max(axis=1)
    # Map to [2^-21, 1 - 2^-21] rather than [0, 1] so that float rounding inside the interpolation
    # never leaves [0, 1] and no clipping pass over the full-size maps is needed (error < 1e-6).
    # The few numbers per map in plain Python: a numpy call on them costs more than the arithmetic.
    scale, offset = np.zeros(n), np.zeros(n)
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        span = b - a
        # a span at float32 rounding level is a constant map: zeros, not amplified noise
        if span > 0 and span > _FLAT * max(abs(a), abs(b)):
            scale[i] = 1.0 / span * (1.0 - 2 * _MARGIN)
            offset[i] = _MARGIN
    return ((cams - lo[:, None, None]) * scale[:, None, None] + offset[:, None, None]).astype(np.float32)


def upsample(normed: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Bilinearly upsample one normalised map ``(h, w)`` to ``shape`` in a single pass
    (OpenCV's ``INTER_LINEAR`` where available, which samples like :func:`bilinear_matrix`)."""
    h, w = normed.shape
    big_h, big_w = int(shape[0]), int(shape[1])
    if out is None:
        out = np.empty((big_h, big_w), dtype=np.float32)
    cv2 = _opencv()
    if cv2 is not None and h > 1 and w > 1:
        cv2.resize(normed, (big_w, big_h), dst=out, interpolation=cv2.INTER_LINEAR)
    else:
        np.matmul(_upsampling(big_h, h)[0], normed @ _upsampling(big_w, w)[0].T, out=out)
    return out


@lru_cache(maxsize=1)
def _opencv():
    """OpenCV's module, or None where it is absent (the light install: it comes with grad-cam).
    Imported on the first upsampling, not with this module: the import takes 20-40 ms
    (``python -X importtime``, this machine), paid by every start-up otherwise."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def upsample_normalized(cams: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinearly upsample maps ``(n, h, w)`` to ``shape`` and min-max normalise each to [0, 1].

    Returns float32 ``(n, H, W)``; see :func:`normalize_for_upsampling` and :func:`upsample`.
    """
    normed = normalize_for_upsampling(cams, shape)
    out = np.empty((normed.shape[0], int(shape[0]), int(shape[1])), dtype=np.float32)
    for i in range(normed.shape[0]):
        upsample(normed[i], shape, out=out[i])
    return out


def library_cams(model, x: np.ndarray, method: str = "gradcam", classes=None) -> np.ndarray:
    """Heat maps from the ``grad-cam`` library at ``model.cam_layer`` for each class in ``classes``.

    ``x`` is one model input ``(1, C, S, S)`` (or ``(C, S, S)``); returns ``(n, S, S)`` float32 maps
    normalised by the library (min-max, no inversion). All classes are computed in one
    forward/backward pass over a batch of identical inputs, one ``ClassifierOutputTarget`` each
    (the model is in eval mode, so batch items are independent). Hooks are released afterwards,
    also on error, and parameter gradients are cleared.
    """
    check_method(method)
    require_library_methods(method)
    # the explain extra, as in _library_classes
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = _library_classes()[method]
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    n_classes = model.head_linear.out_features
    classes = list(range(n_classes)) if classes is None else [int(c) for c in classes]
    class_free = method in CLASS_AGNOSTIC_METHODS
    batch = 1 if class_free else len(classes)
    inp = torch.from_numpy(np.repeat(x, batch, axis=0)).requires_grad_(True)
    targets = [ClassifierOutputTarget(c) for c in (classes[:1] if class_free else classes)]
    was_training = model.training
    cam = cls(model=model, target_layers=[model.cam_layer])
    try:
        with torch.enable_grad():
            maps = cam(input_tensor=inp, targets=targets)
    finally:
        # Not the library's context manager: its __exit__ swallows IndexError and prints.
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    maps = np.asarray(maps, dtype=np.float32)
    if class_free:
        maps = np.repeat(maps, len(classes), axis=0)
    return maps
