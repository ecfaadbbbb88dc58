"""Training checkpoints: atomic writes, loaded with ``torch.load(weights_only=True)``.

``last.pt`` holds everything to resume (model, optimiser, scheduler, scaler, epoch and step,
early-stopping state, per-epoch history, random states); ``best.pt`` holds the model weights of
the epoch with the best validation mean AUC. Both contain only tensors and plain values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from kdviewer.core.errors import ModelLoadError

log = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling code; a missing or broken file is a ModelLoadError."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(path, f"checkpoint does not load: {exc}") from exc


def load_weights(model: torch.nn.Module, path: str | Path) -> dict[str, Any]:
    """Load ``path``'s model weights strictly into ``model``; return the checkpoint."""
    ckpt = load(path)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise ModelLoadError(
            path, f"weights do not fit {getattr(model, 'arch', 'the model')}: {exc}"
        ) from exc
    return ckpt
