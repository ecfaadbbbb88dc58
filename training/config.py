"""Typed training configuration: frozen dataclasses, a TOML file and ``--set key=value`` overrides.

The defaults are the paper's method (teacher DenseNet-121 at lr 1e-4, students MobileNetV2 at lr
1e-3, AdamW with weight decay 0.01, distillation alpha 0.7 and temperature 6, input 224 with ImageNet
normalisation, horizontal flip and ±10° rotation). Where the paper is silent (epochs, batch size,
scheduler patience, early stopping patience) the choices are ours and marked so below.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from kdviewer.core.preprocess import InputSpec

UNCERTAIN_POLICIES = ("ones", "zeros", "ignore")
DATA_FORMATS = ("chexpert", "nih", "generic")
CACHE_MODES = ("disk", "memory", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BOOTSTRAP_UNITS = ("patient", "image")
ENSEMBLE_MODES = ("logits", "probs")


@dataclass(frozen=True)
class Jitter:
    """Ranges of the optional augmentations (0 = off).

    ``scale``: zoom factor uniform in [1 − scale, 1 + scale]; ``translate``: shift uniform in
    ±translate of the image width and height; ``brightness``: offset uniform in ±brightness added
    to the [0, 1] image; ``contrast``: factor uniform in [1 − contrast, 1 + contrast] about the
    image's mean. Intensities are clipped to [0, 1].
    """

    scale: float = 0.0
    translate: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale", "translate", "brightness", "contrast"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"augmentation {name}={v} must be in [0, 1)")

    @property
    def geometric(self) -> bool:
        return self.scale > 0 or self.translate > 0

    @property
    def photometric(self) -> bool:
        return self.brightness > 0 or self.contrast > 0


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled images are and how labels and splits are derived from them."""

    format: str = "chexpert"  # chexpert | nih | generic
    root: str = ""  # data folder; given on the command line (--data-root), never hard-coded
    csv: str = ""  # label file, relative to root or absolute; "" = the format's default
    test_csv: str = ""  # CheXpert: valid.csv (radiologist-labelled) becomes the test split; "" = default
    uncertain: str = "ones"  # CheXpert -1 labels: ones (U-Ones) | zeros (U-Zeros) | ignore (masked)
    frontal_only: bool = True  # CheXpert/NIH: keep frontal (PA/AP) images only
    path_column: str = ""  # generic CSV: column with image paths ("" = "path")
    patient_column: str = (
        ""  # generic CSV: patient column ("" = "patient_id"; absent = one patient per image)
    )
    split_column: str = ""  # use a provided split column (values train/val/test) instead of drawing one
    val_fraction: float = 0.1  # of patients, when the split is drawn here
    test_fraction: float = 0.0  # of patients, drawn from the training patients (0 = no test split)
    cache: str = "disk"  # disk (memory-mapped .npy under cache_dir) | memory | none (decode every epoch)
    cache_dir: str = ""  # "" = <workdir>/cache
    num_workers: int = 0  # processes decoding images (cache building, or every batch with cache="none")
    limit: int = 0  # use only the first N images (smoke tests); 0 = all
    # folder of images without labels (any readable chest radiographs) that the distill stage adds
    # to its training images for the distillation term only; "" = none (--unlabeled DIR)
    unlabeled: str = ""


@dataclass(frozen=True)
class ModelStageConfig:
    """Architecture, learning rate and optional initial weights of one trained network."""

    arch: str
    lr: float
    # "none" (random), "imagenet" (torchvision's weights, from its local cache only) or the path of
    # a safetensors file / weights-only state dict (training.init)
    init: str = "none"
    # ours: this network's own schedule and augmentation (both students share them, so the plain
    # baseline gets the same budget); epochs 0 = train.epochs, augment multiplies
    # train.rotation_degrees, scale, translate, brightness and contrast
    epochs: int = 0
    augment: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop shared by the three trainings."""

    epochs: int = 30  # ours: an upper bound, early stopping usually ends sooner
    batch_size: int = 32  # ours; global batch (divided across DDP ranks)
    weight_decay: float = 0.01  # paper (AdamW)
    plateau_factor: float = 0.1  # ours: ReduceLROnPlateau on validation mean AUC
    plateau_patience: int = 2  # ours
    early_stopping_patience: int = 5  # ours: epochs without a better validation mean AUC
    min_delta: float = 0.0  # improvement in mean AUC that counts as better
    # ours: end the run (as finished, best epoch kept) when one more epoch would pass this many
    # seconds of training time in all; 0 = no budget
    time_budget_s: float = 0.0
    hflip: bool = True  # paper
    rotation_degrees: float = 10.0  # paper: uniform in ±rotation_degrees
    # ours, off by default (training.augment.Jitter): zoom in [1 − scale, 1 + scale], shift in
    # ±translate of the size, brightness offset in ±brightness, contrast factor in [1 ± contrast]
    scale: float = 0.0
    translate: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (see training.precision)
    channels_last: bool = True
    compile: bool = False  # torch.compile; off unless measured to help
    sync_bn: bool = True  # SyncBatchNorm under DDP on CUDA (unsupported by PyTorch on CPU/gloo)
    checkpoint_every_steps: int = 0  # also checkpoint mid-epoch every N steps; 0 = once per epoch
    num_threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default
    progress: bool = True  # tqdm progress bars


@dataclass(frozen=True)
class DistillConfig:
    """The paper's distillation loss: alpha·BCE + (1−alpha)·T²·Bernoulli-KL of tempered sigmoids."""

    alpha: float = 0.7
    temperature: float = 6.0
    # ours: 0 = the teacher scores each augmented batch on the fly; K = its logits for K fixed
    # augmented views of every training image are computed once, epoch e trains on view e mod K
    views: int = 0
    # ours: the distillation source; () = <workdir>/teacher. Several run folders, checkpoints or
    # model cards make an ensemble whose logits are averaged (ensemble="logits") or whose
    # probabilities are averaged (ensemble="probs"); --teacher PATH (repeatable) sets it
    teachers: tuple[str, ...] = ()
    ensemble: str = "logits"


@dataclass(frozen=True)
class EvalConfig:
    """Bootstrap settings of the evaluation stage."""

    bootstrap: int = 1000
    bootstrap_unit: str = "patient"  # resample patients (images of one patient move together) or images
    confidence: float = 0.95
    split: str = "auto"  # auto = test if the split has one, else val (then metrics are optimistic)
    ensemble: bool = False  # also evaluate the mean of the models' logits as a model ("ensemble")


@dataclass(frozen=True)
class ExportConfig:
    out: str = ""  # "" = the checkout's/wheel's resources/models
    version: str = "1"
    note: str = ""  # written into every card's training section (e.g. how the run shared its hardware)


@dataclass(frozen=True)
class Config:
    """Everything a run needs; written resolved next to its outputs and into the model cards."""

    seed: int = 0
    input: InputSpec = field(default_factory=InputSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: ModelStageConfig = field(default_factory=lambda: ModelStageConfig("densenet121", 1e-4))
    student: ModelStageConfig = field(default_factory=lambda: ModelStageConfig("mobilenet_v2", 1e-3))
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def validate(self) -> Config:
        """Raise ValueError on values outside their documented choices; return self."""
        checks = [
            (self.data.format, DATA_FORMATS, "data.format"),
            (self.data.uncertain, UNCERTAIN_POLICIES, "data.uncertain"),
            (self.data.cache, CACHE_MODES, "data.cache"),
            (self.train.precision, PRECISIONS, "train.precision"),
            (self.eval.bootstrap_unit, BOOTSTRAP_UNITS, "eval.bootstrap_unit"),
            (self.distill.ensemble, ENSEMBLE_MODES, "distill.ensemble"),
        ]
        for value, allowed, name in checks:
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; choose one of {', '.join(allowed)}")
        if not 0.0 <= self.distill.alpha <= 1.0:
            raise ValueError("distill.alpha must be in [0, 1]")
        if self.distill.temperature <= 0:
            raise ValueError("distill.temperature must be positive")
        if self.distill.views < 0:
            raise ValueError("distill.views must be 0 (on the fly) or a number of views")
        if self.train.batch_size < 1 or self.train.epochs < 1:
            raise ValueError("train.batch_size and train.epochs must be at least 1")
        for role in ("teacher", "student"):
            m = getattr(self, role)
            if m.epochs < 0 or m.augment < 0:
                raise ValueError(f"{role}.epochs and {role}.augment must not be negative")
        if not 0 <= self.data.val_fraction < 1 or not 0 <= self.data.test_fraction < 1:
            raise ValueError("data.val_fraction and data.test_fraction must be in [0, 1)")
        InputSpec.from_dict(self.input.as_dict())
        self.jitter()  # raises on out-of-range augmentation settings
        return self

    def for_role(self, role: str) -> Config:
        """This config as the ``role`` network (teacher or student) trains: its ``epochs`` and
        ``augment`` folded into ``train``, and reset in the section, so the result is idempotent."""
        m: ModelStageConfig = getattr(self, role)
        if m.epochs == 0 and m.augment == 1.0:
            return self
        t, a = self.train, m.augment
        train = replace(
            t,
            epochs=m.epochs or t.epochs,
            rotation_degrees=t.rotation_degrees * a,
            scale=t.scale * a,
            translate=t.translate * a,
            brightness=t.brightness * a,
            contrast=t.contrast * a,
        )
        return replace(self, train=train, **{role: replace(m, epochs=0, augment=1.0)}).validate()

    def jitter(self) -> Jitter:
        """The optional augmentations of ``train`` as a :class:`Jitter`."""
        t = self.train
        return Jitter(scale=t.scale, translate=t.translate, brightness=t.brightness, contrast=t.contrast)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ValueError:
                continue
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return _from_dict(tp, value, where)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        (inner, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, inner, where) for v in value)
    raise ValueError(f"{where}: {value!r} is not a {getattr(tp, '__name__', tp)}")


def _from_dict(cls: type, d: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(f'{where}{k}' for k in unknown)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}{k}") for k, v in d.items()}
    if cls is InputSpec:  # the core's own validation (mean/std per channel, scaling)
        return InputSpec.from_dict({**dataclasses.asdict(InputSpec()), **kwargs})
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as TOML (``3e-4``, ``true``, ``"x"``), else a string."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base: Config | None = None
) -> Config:
    """Build a Config: ``base`` (default: the paper's), then a TOML file, then ``key=value`` overrides."""
    d = (base or Config()).to_dict()
    if path is not None:
        with open(path, "rb") as f:
            d = _merge(d, tomllib.load(f))
    for text in overrides:
        keys, value = parse_override(text)
        node: dict[str, Any] = {}
        cur = node
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = value
        d = _merge(d, node)
    return _from_dict(Config, d).validate()


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (e.g. a run's ``config.json``)."""
    return _from_dict(Config, _merge(Config().to_dict(), d)).validate()


def with_overrides(cfg: Config, **sections: dict[str, Any]) -> Config:
    """Return ``cfg`` with fields of named sections replaced, e.g.
    ``with_overrides(c, train={"epochs": 2})``."""
    changes = {name: replace(getattr(cfg, name), **vals) for name, vals in sections.items()}
    return replace(cfg, **changes).validate()


def write_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as JSON (read back with :func:`config_from_dict`)."""
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_config(path: str | Path) -> Config:
    return config_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
