"""One registry of architectures: torchvision backbones with a five-finding head.

Every network exposes ``forward_features`` (the post-activation feature map that heat maps
use), ``forward_head`` (global average pool + linear) and ``cam_layer`` (the module whose
output is that feature map, the target layer for the ``grad-cam`` library). Module names
match torchvision's (``features``, ``classifier``) so torchvision state dicts load directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kdviewer.core.findings import NUM_FINDINGS


class FindingsNet(nn.Module):
    """A backbone ``features`` → activation → global average pool → ``classifier``."""

    def __init__(self, features: nn.Module, feature_act: nn.Module, classifier: nn.Module, arch: str):
        super().__init__()
        self.features = features
        self.feature_act = feature_act
        self.classifier = classifier
        self.arch = arch

    @property
    def cam_layer(self) -> nn.Module:
        """Target layer for class activation maps: its output is the post-activation feature map."""
        return self.feature_act

    @property
    def head_linear(self) -> nn.Linear:
        """The final linear layer (weights used by the class-activation-map fast path)."""
        if isinstance(self.classifier, nn.Linear):
            return self.classifier
        return [m for m in self.classifier.modules() if isinstance(m, nn.Linear)][-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) input → (N, C, H/32, W/32) post-activation feature map."""
        return self.feature_act(self.features(x))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Feature map → (N, findings) logits: global average pool, then the classifier."""
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(feats, 1), 1)
        return self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _densenet121(num_classes: int) -> FindingsNet:
    from torchvision.models import densenet121  # 1.8 s to import (measured): only when a network is built

    m = densenet121(weights=None, num_classes=num_classes)
    # torchvision applies F.relu after the last norm layer; a module here so hooks can see it.
    return FindingsNet(m.features, nn.ReLU(inplace=False), m.classifier, "densenet121")


def _mobilenet_v2(num_classes: int) -> FindingsNet:
    from torchvision.models import mobilenet_v2  # as in _densenet121

    m = mobilenet_v2(weights=None, num_classes=num_classes)
    # features already ends in Conv-BN-ReLU6; Identity marks the CAM layer.
    return FindingsNet(m.features, nn.Identity(), m.classifier, "mobilenet_v2")


@dataclass(frozen=True)
class ArchInfo:
    name: str
    role: str
    build: Callable[[int], FindingsNet]


ARCHITECTURES: dict[str, ArchInfo] = {
    "densenet121": ArchInfo("densenet121", "teacher", _densenet121),
    "mobilenet_v2": ArchInfo("mobilenet_v2", "student", _mobilenet_v2),
}


def build_model(arch: str, num_classes: int = NUM_FINDINGS) -> FindingsNet:
    """Build an untrained network of a registered architecture."""
    try:
        info = ARCHITECTURES[arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    return info.build(num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights and biases; not BatchNorm running statistics)."""
    return sum(p.numel() for p in model.parameters())


def load_torchvision_backbone(model: FindingsNet, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load a torchvision-format state dict into ``model``, skipping the classifier head.

    Returns the keys that were skipped. Any other mismatch is an error (no silent partial loads).
    """
    own = model.state_dict()
    skipped = [k for k in state_dict if k.startswith("classifier.")]
    body = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
    missing = [k for k in own if not k.startswith("classifier.") and k not in body]
    unexpected = [k for k in body if k not in own]
    if missing or unexpected:
        raise KeyError(
            f"state dict does not fit {model.arch}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in body.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} does not fit {tuple(own[k].shape)}")
    model.load_state_dict({**own, **body}, strict=True)
    return skipped
