"""The distillation source: one teacher or an ensemble of trained models, scoring the student's
augmented batches on the fly, or K fixed augmented views of every training image once, before
training (consistent teaching either way: the targets belong to the very view the student sees).

With ``distill.views = K`` the teacher's logits for view ``v`` of every training image are computed
once and kept in ``<run>/teacher_views.pt`` (keyed by the teachers' weights, the views' parameters
and the images, so a resumed or repeated run reuses them); epoch ``e`` trains on view ``e mod K``.
That costs K teacher passes over the training set instead of one per epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from kdviewer.core.hashing import sha256_file
from kdviewer.core.modelcard import load_model, read_card
from kdviewer.core.models import build_model
from training import checkpoint
from training.augment import AugmentedViews
from training.config import ENSEMBLE_MODES, Config
from training.images import collate_batch

log = logging.getLogger(__name__)

VIEWS_FILE = "teacher_views.pt"


def load_teacher(path: str | Path, cfg: Config) -> torch.nn.Module:
    """A trained teacher from a run folder (its best.pt), a checkpoint file or a model card (.json)."""
    path = Path(path)
    if path.suffix == ".json":
        model, _card = load_model(path)
        return model
    if path.is_dir():
        path = path / checkpoint.BEST
    model = build_model(checkpoint.load(path).get("arch") or cfg.teacher.arch)
    checkpoint.load_weights(model, path)
    return model.eval()


def source_identity(path: str | Path) -> str:
    """The SHA-256 of a teacher's weights: the card's recorded hash, or the checkpoint file's."""
    path = Path(path)
    if path.suffix == ".json":
        return read_card(path).weights_sha256
    return sha256_file(path / checkpoint.BEST if path.is_dir() else path)


def combine_logits(logits: Sequence[torch.Tensor], mode: str = "logits") -> torch.Tensor:
    """One target from several models' logits: their mean (``logits``), or the logit of their mean
    probability (``probs``)."""
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"distill.ensemble={mode!r}; choose one of {', '.join(ENSEMBLE_MODES)}")
    stack = torch.stack([t.float() for t in logits])
    if len(logits) == 1:
        return stack[0]
    if mode == "logits":
        return stack.mean(0)
    return torch.logit(torch.sigmoid(stack).mean(0), eps=1e-6)


class Teachers:
    """Frozen models (eval mode, no gradients) whose combined logits are the distillation target."""

    def __init__(self, models: Sequence[torch.nn.Module], mode: str = "logits"):
        if not models:
            raise ValueError("distillation needs at least one teacher")
        combine_logits([torch.zeros(1)], mode)  # validates the mode
        self.models, self.mode = list(models), mode
        for m in self.models:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def to(self, device: torch.device, channels_last: bool) -> Teachers:
        for m in self.models:
            m.to(device)
            if channels_last:
                m.to(memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return combine_logits([m(x) for m in self.models], self.mode)


def load_teachers(paths: Sequence[str | Path], cfg: Config) -> Teachers:
    """The teachers named by ``paths`` (run folders, checkpoints or model cards), combined as
    ``cfg.distill.ensemble`` says."""
    return Teachers([load_teacher(p, cfg) for p in paths], cfg.distill.ensemble)


def views_key(sources: Sequence[str | Path], views: AugmentedViews, rows: Sequence[int], extra: dict) -> str:
    """SHA-256 identifying precomputed views: teachers' weights, view parameters, images, settings."""
    h = hashlib.sha256(json.dumps([source_identity(s) for s in sources]).encode())
    h.update(json.dumps(extra, sort_keys=True).encode())
    h.update(torch.as_tensor(list(rows), dtype=torch.int64).numpy().tobytes())
    for params in views.params:
        for k in sorted(params):
            h.update(k.encode())
            h.update(params[k].to(torch.float32).numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def precompute_view_logits(
    teachers: Teachers,
    views: AugmentedViews,
    dataset,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Teacher logits (K, N, findings) of every view of every image of ``dataset``; ``prepare``
    turns an augmented [0, 1] batch into model input (normalisation, memory layout)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_batch)
    out = None
    for v in range(len(views)):
        t0 = time.perf_counter()
        for x, _y, idx in loader:
            logits = teachers(prepare(views(x.to(device), idx, v))).float().cpu()
            if out is None:
                out = torch.empty(len(views), len(dataset), logits.shape[1])
            out[v, idx] = logits
        log.info("teacher logits of view %d/%d: %.1f s", v + 1, len(views), time.perf_counter() - t0)
    return out


def cached_view_logits(path: Path, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``path``'s logits if they were computed for ``key``, else ``compute()`` saved there."""
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            log.info("teacher logits of the views from %s", path)
            return saved["logits"]
        log.info("%s was computed for other teachers, views or images: recomputing", path)
    logits = compute()
    checkpoint.atomic_save({"key": key, "logits": logits}, path)
    return logits
