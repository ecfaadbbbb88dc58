"""Model cards and verified weights.

A model is a weights-only safetensors file plus a JSON card beside it. The card names the
architecture, the findings (by registry key), the input spec, per-finding thresholds, the
SHA-256 of the weights, how it was trained, what was measured and the self-test's reference
scores. Loading checks the hash and loads strictly; nothing is ever unpickled.

Model folders are untrusted input (``KDVIEWER_MODELS`` may point anywhere): a card is read only
if it is a regular file of at most :data:`MAX_CARD_BYTES`, parsed without NaN/Infinity,
duplicate keys or runaway nesting, and validated field by field (:meth:`ModelCard.from_dict`);
its weights must be a regular file inside the card's folder, at most :data:`MAX_WEIGHTS_BYTES`,
whose safetensors header accounts for its exact size, before a byte of it is hashed
(:func:`verified_weights`); every card must carry self-test reference scores.

A card may also name the model's exported ONNX graph (``onnx_file``, ``onnx_sha256``) beside the
weights: the viewer then runs it without PyTorch (:func:`verified_graph` checks it the same way
and returns its verified bytes). Cards without one are exported on first use into a cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import stat
import struct
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from kdviewer.core.errors import ModelLoadError
from kdviewer.core.extras import require_torch
from kdviewer.core.findings import FINDING_KEYS, check_keys
from kdviewer.core.hashing import sha256_file, sha256_stream
from kdviewer.core.preprocess import RESAMPLE_FILTERS, InputSpec
from kdviewer.core.resources import models_dirs, override_models_dir

log = logging.getLogger(__name__)

CARD_SCHEMA = 1
DEFAULT_THRESHOLD = 0.5
MAX_CARD_BYTES = 1 << 20  # the bundled cards are about 9 KB
MAX_WEIGHTS_BYTES = 1 << 29  # 512 MiB; the teacher's weights are 28 MB
MAX_GRAPH_BYTES = 1 << 29  # the teacher's ONNX graph is about 28 MB
MAX_SCOPE_BYTES = 1 << 24  # the scope check's parameters (kdviewer.core.scope) are about 0.3 MB
MAX_SAFETENSORS_HEADER = 1 << 23  # the bundled headers are about 30 KB
INPUT_SIZE_RANGE = (32, 1024)  # 0 divided by zero; 60000 asked for 22 GB
REFERENCE_SIDE_RANGE = (16, 2048)  # the self-test's reference image, allocated before scoring

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ARCHITECTURE = re.compile(r"[a-z][a-z0-9_]{0,39}")  # also part of the ONNX cache's file name
_SHA256 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- validation helpers


def _number(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} is {value!r}, outside [{lo}, {hi}]")
    return float(value)


def _integer(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} is {value}, outside [{lo}, {hi}]")
    return value


def _typed(d: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any = None) -> Any:
    types = types if isinstance(types, tuple) else (types,)
    value = d.get(key, default)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ValueError(f"{key!r} must be {names}, not {type(value).__name__}")
    return value


def _matching(d: dict[str, Any], key: str, pattern: re.Pattern) -> str:
    value = _typed(d, key, str, "")
    if not pattern.fullmatch(value):
        raise ValueError(f"{key!r} {value[:80]!r} is not a valid value (expected {pattern.pattern})")
    return value


def _plain_file_name(value: Any, key: str = "weights_file") -> str:
    """A bare file name: no folder part, no parent reference, no absolute path."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a file name, not {value!r}")
    if (
        value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
        or len(value) > 255
        or os.path.isabs(value)
    ):
        raise ValueError(f"{key!r} {value[:80]!r} must be a plain file name in the card's folder")
    return value


def _graph_fields(d: dict[str, Any]) -> dict[str, Any]:
    """``onnx_file`` and ``onnx_sha256``: both absent (or null), or a plain file name and a hash."""
    file, digest = d.get("onnx_file"), d.get("onnx_sha256")
    if file is None and digest is None:
        return {"onnx_file": None, "onnx_sha256": None}
    if file is None or digest is None:
        raise ValueError("'onnx_file' and 'onnx_sha256' go together")
    return {
        "onnx_file": _plain_file_name(file, "onnx_file"),
        "onnx_sha256": _matching(d, "onnx_sha256", _SHA256),
    }


def _scope(d: Any) -> dict[str, Any] | None:
    """The scope check's section (:mod:`kdviewer.core.scope`): absent (null), or a table naming its
    parameters file (a plain name) with that file's SHA-256, a method and a finite threshold."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError("'scope' must be a table")
    _typed(d, "method", str, None)
    _number(d.get("threshold"), "scope.threshold")
    return {
        **d,
        "file": _plain_file_name(d.get("file"), "scope.file"),
        "sha256": _matching(d, "sha256", _SHA256),
    }


def _int8(d: Any, findings: tuple[str, ...]) -> dict[str, Any] | None:
    """The int8 graph's section (``kdviewer-train quantize``, training/quantize.py): absent (null), or
    a table naming the quantized ONNX graph (a plain name) with its SHA-256, whether it is the
    default precision, and its own self-test scores on the reference input."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError("'int8' must be a table")
    _typed(d, "default", bool, False)
    return {
        **d,
        "file": _plain_file_name(d.get("file"), "int8.file"),
        "sha256": _matching(d, "sha256", _SHA256),
        "reference_scores": _scores(d.get("reference_scores"), "int8.reference_scores", findings),
    }


def _input_spec(d: Any) -> InputSpec:
    if not isinstance(d, dict):
        raise ValueError("'input' must be a table")
    defaults = InputSpec()
    extra = set(d) - set(InputSpec.__dataclass_fields__)
    if extra:
        raise ValueError(f"unknown input fields {sorted(extra)}")
    size = _integer(d.get("size", defaults.size), "input.size", *INPUT_SIZE_RANGE)
    channels = _integer(d.get("channels", defaults.channels), "input.channels", 3, 3)  # the networks take RGB
    stats = {}
    for key, lo in (("mean", None), ("std", 1e-6)):
        values = d.get(key, list(getattr(defaults, key)))
        if not isinstance(values, list) or len(values) != channels:
            raise ValueError(f"input.{key} must be a list of {channels} numbers")
        stats[key] = tuple(_number(v, f"input.{key}", lo, 1e6) for v in values)
    scaling = _typed(d, "scaling", str, defaults.scaling)
    resample = _typed(d, "resample", str, defaults.resample)
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(f"input.resample {resample!r} is not one of {sorted(RESAMPLE_FILTERS)}")
    gap = d.get("reducing_gap", defaults.reducing_gap)
    gap = None if gap is None else _number(gap, "input.reducing_gap", 1.0, 16.0)
    return InputSpec.from_dict(
        {
            "size": size,
            "channels": channels,
            **stats,
            "scaling": scaling,
            "resample": resample,
            "reducing_gap": gap,
        }
    )


def _scores(d: Any, what: str, keys: tuple[str, ...] | None) -> dict[str, float]:
    """Finding key → probability in [0, 1]; all of ``keys`` when given, else any known keys."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a table of finding keys")
    unknown = [k for k in d if k not in FINDING_KEYS]
    if unknown:
        raise ValueError(f"{what} name unknown findings {unknown}; known: {', '.join(FINDING_KEYS)}")
    if keys is not None and set(d) != set(keys):
        raise ValueError(f"{what} must give all of {list(keys)}")
    return {k: _number(d[k], f"{what}[{k!r}]", 0.0, 1.0) for k in FINDING_KEYS if k in d}


def _reference(d: Any, findings: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(d, dict) or not isinstance(d.get("input"), dict):
        raise ValueError("'reference' must be a table with 'input' and 'scores' (the self-test needs it)")
    desc = d["input"]
    _typed(desc, "generator", str, None)
    _integer(desc.get("version"), "reference.input.version", 1, 1 << 30)
    shape = desc.get("shape")
    if not isinstance(shape, list) or len(shape) != 2:
        raise ValueError("reference.input.shape must be [rows, cols]")
    for v in shape:
        _integer(v, "reference.input.shape", *REFERENCE_SIDE_RANGE)
    return {**d, "scores": _scores(d.get("scores"), "reference.scores", findings)}


def _card_fields(d: dict[str, Any]) -> dict[str, Any]:
    """The validated keyword arguments of :class:`ModelCard` for a card read from a file."""
    known = set(ModelCard.__dataclass_fields__)
    extra = set(d) - known
    if extra:
        raise ValueError(f"unknown model card fields {sorted(extra)}")
    schema = d.get("schema", CARD_SCHEMA)
    if schema != CARD_SCHEMA or isinstance(schema, bool):
        raise ValueError(f"model card schema {schema!r} is not supported (expected {CARD_SCHEMA})")
    findings = _typed(d, "findings", list, list(FINDING_KEYS))
    if not all(isinstance(k, str) for k in findings):
        raise ValueError("'findings' must be a list of finding keys")
    findings = check_keys(findings)
    versions = _typed(d, "versions", dict, {})
    if not all(isinstance(v, (str, type(None))) for v in versions.values()):
        raise ValueError("'versions' must map names to version strings")
    return {
        "name": _matching(d, "name", _NAME),
        "architecture": _matching(d, "architecture", _ARCHITECTURE),
        "weights_file": _plain_file_name(d.get("weights_file")),
        "weights_sha256": _matching(d, "weights_sha256", _SHA256),
        **_graph_fields(d),
        "findings": findings,
        "input": _input_spec(d.get("input", {})),
        "thresholds": _scores(d.get("thresholds", {}), "thresholds", None),
        "trained": _typed(d, "trained", bool, False),
        "description": _typed(d, "description", str, ""),
        "version": _typed(d, "version", str, "0"),
        "training": _typed(d, "training", dict, {}),
        "metrics": _typed(d, "metrics", dict, {}),
        "versions": versions,
        "git_revision": _typed(d, "git_revision", (str, type(None)), None),
        "reference": _reference(d.get("reference"), findings),
        "scope": _scope(d.get("scope")),
        "int8": _int8(d.get("int8"), findings),
        "schema": CARD_SCHEMA,
    }


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
    onnx_file: str | None = None  # the exported graph beside the weights (runs without PyTorch)
    onnx_sha256: str | None = None
    scope: dict[str, Any] | None = None  # the scope check: {"method", "file", "sha256", "threshold", ...}
    int8: dict[str, Any] | None = (
        None  # the int8 graph: {"file", "sha256", "default", "reference_scores", ...}
    )

    def to_json(self) -> str:
        """The card as indented JSON (findings as keys, the input spec as a table)."""
        d = asdict(self)
        d["findings"] = list(self.findings)
        d["input"] = self.input.as_dict()
        if self.onnx_file is None:  # a card without a graph reads as before graphs existed
            del d["onnx_file"], d["onnx_sha256"]
        if self.scope is None:  # likewise for a card without a scope check
            del d["scope"]
        if self.int8 is None:  # and without an int8 graph
            del d["int8"]
        return json.dumps(d, indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Validate and build a card read from a file; anything off is a ValueError naming the field.

        Checked: the schema; no unknown fields; name, architecture and SHA-256 spelled as they must be;
        ``weights_file`` (and ``onnx_file``, with its SHA-256, if given) a plain file name; findings the
        registry's keys in its order; the input spec (``size`` in :data:`INPUT_SIZE_RANGE`, 3 channels,
        finite mean and positive std per channel, a known resampling); thresholds in [0, 1] for known
        findings; the self-test ``reference`` present with a bounded input shape and a score in [0, 1]
        for every finding;
        every number finite and every field of its type.
        """
        if not isinstance(d, dict):
            raise ValueError("a model card must be a JSON object")
        return cls(**_card_fields(d))

    def with_updates(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    @property
    def short_hash(self) -> str:
        return self.weights_sha256[:12]


# --------------------------------------------------------------------------- reading files


def _open_regular(path: Path, max_bytes: int, what: str) -> int:
    """A read-only descriptor of ``path`` once it is known to be a regular file of at most
    ``max_bytes``. Opened non-blocking and checked on the descriptor, so neither a FIFO nor a
    device (``/dev/zero``) nor a file swapped in between the check and the read is ever read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ModelLoadError(path, f"{what} is missing") from None
    except OSError as exc:
        raise ModelLoadError(path, f"{what} cannot be opened: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelLoadError(path, f"{what} is not a regular file")
        if st.st_size > max_bytes:
            raise ModelLoadError(path, f"{what} is {st.st_size} bytes, more than the {max_bytes} allowed")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _strict_json(text: str | bytes) -> Any:
    def no_constants(name: str):
        raise ValueError(f"{name} is not a finite number")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
        return dict(pairs)

    try:
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_card(path: str | Path) -> ModelCard:
    """Parse and validate a model card, raising ModelLoadError naming the file on any problem."""
    path = Path(path)
    fd = _open_regular(path, MAX_CARD_BYTES, "model card")
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_CARD_BYTES + 1)
        if len(data) > MAX_CARD_BYTES:
            raise ValueError(f"more than {MAX_CARD_BYTES} bytes")
        return ModelCard.from_dict(_strict_json(data.decode("utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelLoadError(path, f"invalid model card: {exc}") from exc


def weights_path(card: ModelCard, card_path: str | Path) -> Path:
    """Where a card's weights file is: beside the card (not yet checked; see :func:`verified_weights`)."""
    return Path(card_path).parent / _plain_file_name(card.weights_file)


def _safetensors_size(f, path: Path, size: int) -> None:
    """Check that a safetensors file's header accounts for exactly ``size`` bytes."""
    head = f.read(8)
    if len(head) < 8:
        raise ModelLoadError(path, "weights file is too short for a safetensors header")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
        raise ModelLoadError(path, f"weights file declares a {n}-byte header (file: {size} bytes)")
    try:
        header = _strict_json(f.read(n).decode("utf-8"))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ModelLoadError(path, f"weights file has no valid safetensors header: {exc}") from None
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        raise ModelLoadError(
            path, f"weights file is {size} bytes, its safetensors header describes {expected}"
        )


def _inside_folder(path: Path, what: str) -> Path:
    """``path`` resolved through any symlinks; ModelLoadError if that leaves the card's folder."""
    folder = os.path.realpath(path.parent)
    real = os.path.realpath(path)
    if os.path.commonpath([folder, real]) != folder:
        raise ModelLoadError(path, f"{what} resolves to {real}, outside the card's folder")
    return Path(real)


def verified_weights(card: ModelCard, card_path: str | Path) -> Path:
    """The card's weights file, checked before use; raises ModelLoadError naming what is wrong.

    The file must be a plain name resolving (through any symlinks) to a regular file inside the
    card's folder, of at most :data:`MAX_WEIGHTS_BYTES`, whose safetensors header accounts for
    its size exactly; only then is it hashed and compared with ``card.weights_sha256``.
    """
    try:
        wpath = weights_path(card, card_path)
    except ValueError as exc:
        raise ModelLoadError(card_path, str(exc)) from None
    real = _inside_folder(wpath, "weights file")
    fd = _open_regular(real, MAX_WEIGHTS_BYTES, "weights file")
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        _safetensors_size(f, wpath, size)
        f.seek(0)
        digest = sha256_stream(f)
    if digest != card.weights_sha256:
        raise ModelLoadError(
            wpath, f"SHA-256 {digest[:12]}… does not match the model card's {card.weights_sha256[:12]}…"
        )
    return real


def graph_path(card: ModelCard, card_path: str | Path) -> Path | None:
    """Where a card's ONNX graph is (beside the card), or None if the card names none."""
    if card.onnx_file is None:
        return None
    return Path(card_path).parent / _plain_file_name(card.onnx_file, "onnx_file")


def verified_graph(card: ModelCard, card_path: str | Path) -> bytes | None:
    """The bytes of the card's ONNX graph once checked, or None if the card names none.

    Checked like the weights: a regular file inside the card's folder, of at most
    :data:`MAX_GRAPH_BYTES`, whose SHA-256 equals ``card.onnx_sha256``. The bytes returned are
    the ones hashed (the runtime builds its session from them), so the file cannot change between
    the check and the use. Raises ModelLoadError naming the file otherwise.
    """
    path = graph_path(card, card_path)
    if path is None:
        return None
    return verified_bytes(path, card.onnx_sha256, MAX_GRAPH_BYTES, "ONNX graph")


def int8_graph_path(card: ModelCard, card_path: str | Path) -> Path | None:
    """Where a card's int8 ONNX graph is (beside the card), or None if the card has none."""
    if card.int8 is None:
        return None
    return Path(card_path).parent / _plain_file_name(card.int8["file"], "int8.file")


def verified_int8_graph(card: ModelCard, card_path: str | Path) -> bytes | None:
    """The bytes of the card's int8 ONNX graph once checked like :func:`verified_graph`, or None
    if the card has none."""
    path = int8_graph_path(card, card_path)
    if path is None:
        return None
    return verified_bytes(path, card.int8["sha256"], MAX_GRAPH_BYTES, "int8 ONNX graph")


def verified_bytes(path: Path, sha256: str, max_bytes: int, what: str) -> bytes:
    """The bytes of a file a card names beside itself, once checked: a regular file inside the
    card's folder, of at most ``max_bytes``, whose SHA-256 is ``sha256``. The bytes returned are
    the ones hashed, so the file cannot change between the check and the use. Raises
    ModelLoadError naming the file otherwise."""
    real = _inside_folder(path, what)
    fd = _open_regular(real, max_bytes, what)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelLoadError(path, f"SHA-256 {digest[:12]}… does not match the model card's {sha256[:12]}…")
    return data


def parameter_count(weights: str | Path) -> int:
    """Learnable parameters in a (verified) safetensors file, counted from its header without
    PyTorch: every tensor but batch-norm running statistics."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    total = 0
    with safe_open(str(weights), framework="numpy") as f:
        for key in f.keys():
            if not key.endswith(buffers):
                total += math.prod(f.get_slice(key).get_shape())
    return total


def load_model(card_path: str | Path):
    """Load the card and its verified weights; return ``(model, card)`` with the model in eval mode.

    Raises ModelLoadError when the card is invalid, the weights are missing, unsafe (see
    :func:`verified_weights`), do not match the card's SHA-256, hold a non-finite value, or do not
    fit the architecture exactly.
    """
    card = read_card(card_path)
    require_torch(f"loading {Path(card_path).name} into PyTorch")
    return model_from_weights(card, verified_weights(card, card_path), Path(card_path).name), card


def verified_card(card_path: str | Path) -> tuple[ModelCard, Path]:
    """The card at ``card_path`` and its weights file once checked (:func:`read_card`,
    :func:`verified_weights`); ModelLoadError naming the file otherwise."""
    card = read_card(card_path)
    return card, verified_weights(card, card_path)


def model_from_weights(card: ModelCard, wpath: Path, source: str):
    """``card``'s network with the weights at ``wpath`` (checked by :func:`verified_weights`) loaded
    strictly, in eval mode; ``source`` names the file in the message when PyTorch is missing.

    Raises ModelLoadError when the weights hold a non-finite value or do not fit the architecture exactly.
    """
    require_torch(f"loading {source} into PyTorch")
    # PyTorch is an optional extra (the light install runs the cards' ONNX graphs without it)
    import torch
    from safetensors.torch import load_file

    from kdviewer.core.models import build_model

    try:
        model = build_model(card.architecture, len(card.findings))
        state = load_file(str(wpath))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, KeyError, ValueError) as exc:
        raise ModelLoadError(wpath, f"weights do not load into {card.architecture}: {exc}") from exc
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelLoadError(wpath, f"weights hold NaN or infinite values ({', '.join(bad[:3])}…)")
    return model.eval()


def save_model(model, card: ModelCard, folder: str | Path) -> tuple[Path, ModelCard]:
    """Write ``model``'s weights (safetensors) and its card into ``folder``; return card path and card.

    The card's ``weights_sha256`` is filled in from the written file. The card must carry its
    self-test reference (:func:`kdviewer.core.engine.with_reference`): a card without one is refused
    when read.
    """
    from safetensors.torch import save_file  # imports PyTorch, an optional extra

    if not card.reference:
        raise ValueError(f"model card {card.name!r} has no self-test reference (engine.with_reference)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wpath = folder / _plain_file_name(card.weights_file)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(wpath), metadata={"architecture": card.architecture, "format": "pt"})
    card = card.with_updates(weights_sha256=sha256_file(wpath))
    cpath = folder / f"{Path(card.weights_file).stem}.json"
    cpath.write_text(card.to_json(), encoding="utf-8")
    log.info("wrote %s and %s", wpath, cpath)
    return cpath, card


def scan_cards(dirs: list[Path] | None = None) -> tuple[dict[str, Path], list[ModelLoadError]]:
    """Model cards by name across ``dirs`` (default: the resources locator's, highest precedence
    first; the first card of a name wins), and the problems found on the way: a card that does
    not read or validate, two cards of one name in one folder, an unreadable folder, or a
    ``KDVIEWER_MODELS`` that is not a folder."""
    found: dict[str, Path] = {}
    problems: list[ModelLoadError] = []
    override = override_models_dir() if dirs is None else None
    for d in dirs if dirs is not None else models_dirs():
        try:
            names = sorted(
                e.name for e in os.scandir(d) if e.name.endswith(".json") and not e.name.startswith(".")
            )
        except FileNotFoundError:
            if d == override:
                problems.append(ModelLoadError(d, "the folder KDVIEWER_MODELS names does not exist"))
            continue  # otherwise no cards there yet (the user's folder before any export)
        except OSError as exc:
            problems.append(ModelLoadError(d, f"models folder unreadable: {exc.strerror or exc}"))
            continue
        here: dict[str, Path] = {}
        for p in (d / n for n in names):
            try:
                card = read_card(p)
            except ModelLoadError as exc:
                problems.append(exc)
                continue
            if card.name in here:
                first = here[card.name].name
                problems.append(ModelLoadError(p, f"a second card named {card.name!r} (first: {first})"))
                continue
            here[card.name] = p
            found.setdefault(card.name, p)
    return found, problems


def find_cards(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Model cards by model name across ``dirs`` (see :func:`scan_cards`).

    Raises ModelLoadError on the first problem :func:`scan_cards` finds: once a card is installed,
    a broken one is an error, never a silent fall-back to another model.
    """
    found, problems = scan_cards(dirs)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ModelLoadError(problems[0].path, problems[0].cause + more)
    return found
