"""Shared, process-cached objects for the engine/explain/runtime tests.

Each expensive object (the DenseNet-121 teacher's ONNX export in particular) is built at most once
per test session; its export goes to the private cache tests/conftest.py sets for the session.
"""

from __future__ import annotations

import functools

import numpy as np


def save_untrained_student(folder, seed: int):
    """An untrained MobileNetV2 student given its reference scores and saved in ``folder`` as a
    trained card: (model, card path, saved card)."""
    from kdviewer.core.engine import with_reference
    from kdviewer.core.modelcard import ModelCard, save_model
    from kdviewer.core.untrained import untrained_model

    model = untrained_model("mobilenet_v2", seed=seed)
    card = ModelCard(
        name="student",
        architecture="mobilenet_v2",
        weights_file="student.safetensors",
        weights_sha256="",
        trained=True,
    )
    path, card = save_model(model, with_reference(model, card), folder)
    return model, path, card


@functools.cache
def engine(name: str, runtime: str = "onnxruntime"):
    from kdviewer.core.engine import DEFAULT_ARCH, InferenceEngine

    return InferenceEngine.untrained(name, DEFAULT_ARCH[name], runtime=runtime)


def grey_image(shape=(300, 200), blob=None, path="<synthetic>"):
    """A LoadedImage with a dark smooth background and optionally a bright Gaussian blob at (row, col)."""
    from kdviewer.core.image import ImageMetadata, LoadedImage

    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    pixels = 200.0 + 100.0 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    if blob is not None:
        r, c = blob
        sigma = 0.06 * min(rows, cols)
        pixels += 3000.0 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2))
    pixels = pixels.astype(np.float32)
    meta = ImageMetadata(source_format="synthetic", rows=rows, cols=cols)
    value_range = (float(pixels.min()), float(pixels.max()))
    return LoadedImage(path=path, pixels=pixels, value_range=value_range, metadata=meta)
