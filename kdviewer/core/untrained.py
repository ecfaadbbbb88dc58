"""Untrained stand-ins: a seeded network, and the same network written as weights and a model card.

For tests, benchmarks and a build without trained weights; every engine made from them is loudly
labelled untrained (see :meth:`kdviewer.core.engine.InferenceEngine.untrained`). Needs PyTorch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from kdviewer.core.engine import DEFAULT_ARCH, reference_image, with_reference
from kdviewer.core.modelcard import ModelCard, save_model
from kdviewer.core.models import FindingsNet, build_model
from kdviewer.core.preprocess import InputSpec, to_model_input

__all__ = ["untrained_model", "write_untrained_card"]

_cache: dict[tuple[str, int], dict] = {}
_lock = threading.Lock()


def _calibrated_state(architecture: str, seed: int) -> dict:
    """The seeded network's state once its batch-norm statistics are recomputed on smooth patterns."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(architecture)
    spec = InputSpec()
    batch = []
    for i in range(4):  # smooth patterns with different phases and blob positions
        img = reference_image((224 + 16 * i, 224 - 8 * i)).pixels
        batch.append(to_model_input(np.roll(img, 37 * i, axis=i % 2), spec, (0.0, 4095.0)))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(np.stack(batch)))
    for m in norms:
        m.momentum = 0.1
    model.eval()
    return {k: v.clone() for k, v in model.state_dict().items()}


def untrained_model(architecture: str, seed: int = 0) -> FindingsNet:
    """A deterministic untrained network: seeded initialisation, then batch-norm statistics
    recomputed on a few synthetic inputs so activations and scores have a sane scale (with
    torchvision's default running statistics, random networks give near-constant outputs).
    """
    with _lock:
        state = _cache.get((architecture, seed))
        if state is None:
            state = _cache[(architecture, seed)] = _calibrated_state(architecture, seed)
    model = build_model(architecture)
    model.load_state_dict(state, strict=True)
    return model.eval()


def write_untrained_card(folder, name: str = "student", *, seed: int = 0) -> Path:
    """Write the seeded untrained network of ``name`` as weights + model card (with self-test
    reference scores) into ``folder``; return the card's path. Benchmarks use it to measure an
    installed build's start (from a card and its cached export) before trained weights exist."""
    arch = DEFAULT_ARCH.get(name, "mobilenet_v2")
    model = untrained_model(arch, seed)
    card = ModelCard(
        name=name,
        architecture=arch,
        weights_file=f"{name}.safetensors",
        weights_sha256="",
        trained=False,
        description=f"UNTRAINED {arch} (random weights, seed {seed})",
    )
    card_path, _ = save_model(model, with_reference(model, card), folder)
    return card_path
