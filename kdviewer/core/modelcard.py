"""Model cards and verified weights.

A model is a weights-only safetensors file plus a JSON card beside it. The card names the
architecture, the findings (by registry key), the input spec, per-finding thresholds, the
SHA-256 of the weights, how it was trained and what was measured. Loading checks the hash and
loads strictly; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kdviewer.core.errors import ModelLoadError
from kdviewer.core.findings import FINDING_KEYS, check_keys
from kdviewer.core.preprocess import InputSpec

log = logging.getLogger(__name__)

CARD_SCHEMA = 1
DEFAULT_THRESHOLD = 0.5


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use and judge one weights file."""

    name: str  # e.g. "student" or "teacher"
    architecture: str  # key of kdviewer.core.models.ARCHITECTURES
    weights_file: str  # file name, relative to the card's folder
    weights_sha256: str
    findings: tuple[str, ...] = FINDING_KEYS
    input: InputSpec = field(default_factory=InputSpec)
    thresholds: dict[str, float] = field(default_factory=lambda: {k: DEFAULT_THRESHOLD for k in FINDING_KEYS})
    trained: bool = False
    description: str = ""
    version: str = "0"
    training: dict[str, Any] = field(default_factory=dict)  # data description + resolved config
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    git_revision: str | None = None
    reference: dict[str, Any] | None = None  # self-test: {"input": ..., "scores": {key: float}}
    schema: int = CARD_SCHEMA

    def to_json(self) -> str:
        """The card as indented JSON (findings as keys, the input spec as a table)."""
        d = asdict(self)
        d["findings"] = list(self.findings)
        d["input"] = self.input.as_dict()
        return json.dumps(d, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        """Validate and build a card: schema, finding keys (registry order), input spec, thresholds;
        unknown fields are an error."""
        d = dict(d)
        if d.get("schema", CARD_SCHEMA) != CARD_SCHEMA:
            raise ValueError(f"model card schema {d.get('schema')} is not supported (expected {CARD_SCHEMA})")
        d["findings"] = check_keys(d.get("findings", FINDING_KEYS))
        d["input"] = InputSpec.from_dict(d.get("input", {}))
        thresholds = {k: float(v) for k, v in d.get("thresholds", {}).items()}
        check_keys([k for k in FINDING_KEYS if k in thresholds] + [k for k in thresholds if k not in FINDING_KEYS])
        d["thresholds"] = thresholds
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown model card fields {sorted(extra)}")
        return cls(**d)

    def with_updates(self, **changes: Any) -> "ModelCard":
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    @property
    def short_hash(self) -> str:
        return self.weights_sha256[:12]


def read_card(path: str | Path) -> ModelCard:
    """Parse a model card, raising ModelLoadError naming the file on any problem."""
    path = Path(path)
    try:
        return ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(path, f"invalid model card: {exc}") from exc


def weights_path(card: ModelCard, card_path: str | Path) -> Path:
    """Where a card's weights file is: beside the card."""
    return Path(card_path).parent / card.weights_file


def load_model(card_path: str | Path):
    """Load the card and its verified weights; return ``(model, card)`` with the model in eval mode.

    Raises ModelLoadError when the card is invalid, the weights are missing, their SHA-256 does
    not match the card, or the tensors do not fit the architecture exactly.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from kdviewer.core.models import build_model

    card = read_card(card_path)
    wpath = weights_path(card, card_path)
    if not wpath.is_file():
        raise ModelLoadError(wpath, "weights file is missing")
    digest = sha256_file(wpath)
    if digest != card.weights_sha256:
        raise ModelLoadError(wpath, f"SHA-256 {digest[:12]}… does not match the model card's {card.weights_sha256[:12]}…")
    try:
        model = build_model(card.architecture, len(card.findings))
        state = load_file(str(wpath))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, KeyError, ValueError) as exc:
        raise ModelLoadError(wpath, f"weights do not load into {card.architecture}: {exc}") from exc
    model.eval()
    return model, card


def save_model(model, card: ModelCard, folder: str | Path) -> tuple[Path, ModelCard]:
    """Write ``model``'s weights (safetensors) and its card into ``folder``; return card path and card.

    The card's ``weights_sha256`` is filled in from the written file.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wpath = folder / card.weights_file
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(wpath), metadata={"architecture": card.architecture, "format": "pt"})
    card = card.with_updates(weights_sha256=sha256_file(wpath))
    cpath = folder / f"{Path(card.weights_file).stem}.json"
    cpath.write_text(card.to_json(), encoding="utf-8")
    log.info("wrote %s and %s", wpath, cpath)
    return cpath, card


def find_cards(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Model cards by model name across ``dirs`` (default: the resources locator's), first wins."""
    from kdviewer.core.resources import models_dirs

    found: dict[str, Path] = {}
    for d in dirs if dirs is not None else models_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            try:
                card = read_card(p)
            except ModelLoadError as exc:
                log.warning("skipping %s", exc)
                continue
            found.setdefault(card.name, p)
    return found
