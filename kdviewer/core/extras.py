"""Which optional parts of kdviewer are installed, and the error that names the missing one.

``pip install kdviewer`` runs the shipped models from their ONNX graphs without PyTorch. PyTorch
(with torchvision and ``grad-cam``) comes with the ``explain`` extra and is needed only for the
library heat-map methods, the eager PyTorch runtime and models whose card carries no ONNX graph;
the ``train`` extra adds what ``kdviewer-train`` needs. Whether a package is installed is found
without importing it (importing PyTorch takes seconds).
"""

from __future__ import annotations

import importlib.util
import sys

from kdviewer.core.errors import KdviewerError

EXPLAIN_INSTALL = "pip install 'kdviewer[explain]'"


class MissingExtraError(KdviewerError, ImportError):
    """A feature needs an optional package that this installation lacks; says how to add it."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported; False if it is blocked)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def torch_available() -> bool:
    """Whether PyTorch and torchvision are installed (the ``explain`` or ``train`` extra)."""
    return installed("torch") and installed("torchvision")


def require_torch(what: str) -> None:
    """Raise :class:`MissingExtraError` saying that ``what`` needs PyTorch, unless it is installed."""
    if not torch_available():
        raise MissingExtraError(
            f"{what} needs PyTorch, which this installation lacks; install it with: {EXPLAIN_INSTALL}"
        )
