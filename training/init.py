"""Initial weights of a network to train: ``init = "none" | "imagenet" | PATH`` per model.

* ``none`` (or ``""``): random initialisation.
* ``imagenet``: torchvision's ImageNet weights for the architecture (its weights API names the
  file), read from torchvision's own cache, ``torch.hub.get_dir()/checkpoints/<file>``, which is
  where a network-connected torchvision puts them. Nothing is ever downloaded: a missing file is
  one error line naming the file and the folder to place it in, and the file's SHA-256 must start
  with the hash prefix that torchvision publishes in the file name.
* PATH: a safetensors file or a weights-only PyTorch state dict (``torch.load(weights_only=True)``;
  a checkpoint's ``model`` or ``state_dict`` entry is taken), e.g. a trained run's ``best.pt`` or a
  shipped ``*.safetensors``.

Every key of the network's body must be in the file and nothing else (strict); the head (five
findings here, 1000 ImageNet classes there) is loaded only where its shapes fit and is otherwise
left at its random initialisation, and a first convolution made for another number of input
channels is adapted (summed over its input channels, then spread evenly, so a grey image
replicated to any number of channels gives the same response).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.models
from safetensors.torch import load_file

from kdviewer.core.hashing import sha256_file
from kdviewer.core.models import FindingsNet

log = logging.getLogger(__name__)

NONE, IMAGENET = "none", "imagenet"
# torchvision's weights enum per architecture of the registry (kdviewer.core.models)
IMAGENET_WEIGHTS = {"densenet121": "DenseNet121_Weights", "mobilenet_v2": "MobileNet_V2_Weights"}
FIRST_CONV = {"densenet121": "features.conv0.weight", "mobilenet_v2": "features.0.0.weight"}
# torch.hub's convention: <name>-<first hex digits of the file's SHA-256>.<ext>
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
# the published DenseNet files name their layers "norm.1" where the modules are now "norm1"
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


@dataclass(frozen=True)
class InitRecord:
    """What a run started from: the setting, the file read (if any) and its SHA-256."""

    init: str
    file: str = ""
    sha256: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"init": self.init, "file": self.file, "sha256": self.sha256}


def imagenet_weights(arch: str):
    """torchvision's default ImageNet weights entry (an enum member) for ``arch``."""
    try:
        enum = getattr(torchvision.models, IMAGENET_WEIGHTS[arch])
    except KeyError:
        raise ValueError(f"no ImageNet weights are known for architecture {arch!r}") from None
    return enum.DEFAULT


def imagenet_file(arch: str) -> Path:
    """Where torchvision keeps ``arch``'s ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    name = imagenet_weights(arch).url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def published_sha256_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix a torch.hub file name carries (``densenet121-a639ec97.pth`` → ``a639ec97``)."""
    m = _HASH_IN_NAME.search(file_name)
    return m.group(1) if m else None


def arch_of_state_dict(state: dict) -> str:
    """Which registered architecture a state dict's keys belong to (by a key only it has)."""
    if any(".denseblock" in k for k in state):
        return "densenet121"
    if any(k.startswith("features.18.") for k in state):
        return "mobilenet_v2"
    return "unknown"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a weights-only state dict (a checkpoint's ``model`` entry)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"initial weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise several types for unreadable files
        raise ValueError(f"{path}: not a safetensors file or a weights-only state dict ({exc})") from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return {_OLD_DENSENET_KEY.sub(r"\1\2", k): v for k, v in state.items()}


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first convolution's weight (out, c, kh, kw) for ``in_channels`` inputs: summed over its c
    inputs and spread evenly, so that a grey image replicated to the channels responds alike."""
    return weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels


def load_into(model: FindingsNet, state: dict[str, torch.Tensor], where: str) -> list[str]:
    """Load ``state`` into ``model``: body strict, head if it fits, first layer adapted; returns
    what was left at random initialisation."""
    own = model.state_dict()
    state = dict(state)
    first = FIRST_CONV.get(model.arch)
    if first in state and first in own and state[first].shape != own[first].shape:
        w = state[first]
        if w.shape[0] != own[first].shape[0] or w.shape[2:] != own[first].shape[2:]:
            raise ValueError(f"{where}: first layer {tuple(w.shape)} does not fit {tuple(own[first].shape)}")
        state[first] = adapt_first_conv(w, own[first].shape[1])
        log.info(
            "%s: first layer adapted from %d to %d input channels", where, w.shape[1], own[first].shape[1]
        )
    head = [k for k in own if k.startswith("classifier.")]
    # files older than BatchNorm's step counter lack it; it only matters for momentum=None
    missing = [k for k in own if k not in state and k not in head and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        found = arch_of_state_dict(state)
        what = f"weights of {found}" if found not in ("unknown", model.arch) else "weights that do not fit"
        raise ValueError(
            f"{where} holds {what}, not {model.arch}: {len(missing)} keys missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    body = [k for k in own if k not in head]
    for k in (k for k in body if k in state):
        if state[k].shape != own[k].shape:
            raise ValueError(
                f"{where}: {k} has shape {tuple(state[k].shape)}, {model.arch} needs {tuple(own[k].shape)}"
            )
    head_fits = all(k in state and state[k].shape == own[k].shape for k in head)
    keep = [k for k in body if k in state] + (head if head_fits else [])
    model.load_state_dict({**own, **{k: state[k] for k in keep}}, strict=True)
    return [] if head_fits else head


def initialise(model: FindingsNet, init: str) -> InitRecord:
    """Apply ``init`` (``none``, ``imagenet`` or a path) to ``model``; return what was loaded."""
    if init in ("", NONE):
        return InitRecord(NONE)
    if init == IMAGENET:
        path = imagenet_file(model.arch)
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights for {model.arch} are not here (nothing is downloaded): place "
                f"{path.name} (torchvision {imagenet_weights(model.arch)}) in {path.parent}"
            )
        digest = sha256_file(path)
        prefix = published_sha256_prefix(path.name)
        if prefix and not digest.startswith(prefix):
            raise ValueError(
                f"{path}: SHA-256 {digest[:12]}… does not start with {prefix}, the hash torchvision "
                "publishes for this file; replace it with the original"
            )
    else:
        path = Path(init).expanduser()
        digest = sha256_file(path) if path.is_file() else ""
    left = load_into(model, read_state_dict(path), str(path))
    log.info(
        "%s: initial weights %s (%s, SHA-256 %s…)%s",
        model.arch,
        init,
        path,
        digest[:12],
        f"; random: {', '.join(left)}" if left else "",
    )
    return InitRecord(init, str(path), digest)
