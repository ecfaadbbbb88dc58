"""One locator for bundled resources (weights, model cards, icons) and the built-in example.

Works from a checkout (top-level ``resources/``) and from an installed wheel, where the same
folder is packaged as ``kdviewer/_resources``. ``KDVIEWER_MODELS`` adds a models folder that
takes precedence (e.g. one that ``kdviewer-train export`` wrote elsewhere).
"""

from __future__ import annotations

import os
import sys
from importlib import resources as importlib_resources
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../kdviewer


def resources_dir() -> Path:
    """The bundled resources folder: the wheel's copy if installed, else the checkout's."""
    packaged = _PACKAGE_DIR / "_resources"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent / "resources"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no resources folder next to {_PACKAGE_DIR} (broken installation?)")


def is_installed() -> bool:
    """Whether kdviewer runs from an installed wheel (its resources packaged beside the code)."""
    return (_PACKAGE_DIR / "_resources").is_dir()


def user_models_dir() -> Path:
    """Where an installed kdviewer keeps models the user trained (``kdviewer-train export``):
    ``$XDG_DATA_HOME/kdviewer/models`` or ``~/.local/share/kdviewer/models`` (``%APPDATA%`` on
    Windows, ``~/Library/Application Support`` on macOS)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "kdviewer" / "models"


def override_models_dir() -> Path | None:
    """The folder ``KDVIEWER_MODELS`` names, if it is set."""
    extra = os.environ.get("KDVIEWER_MODELS")
    return Path(extra) if extra else None


def models_dirs() -> list[Path]:
    """Folders searched for model cards, highest precedence first: ``KDVIEWER_MODELS``, then (for
    an installed kdviewer) the user's models folder, then the bundled ``resources/models``."""
    dirs = []
    extra = override_models_dir()
    if extra is not None:
        dirs.append(extra)
    if is_installed():
        dirs.append(user_models_dir())
    dirs.append(resources_dir() / "models")
    return dirs


def icon_path(name: str) -> Path:
    """Path of a bundled icon."""
    return resources_dir() / "icons" / name


EXAMPLE_NAME = "RG1_J2KR.dcm"


def example_image() -> Path:
    """The built-in example: NEMA WG04 chest CR "RG1" (JPEG 2000 lossless) from ``pydicom-data``."""
    try:
        path = Path(str(importlib_resources.files("data_store") / "data" / EXAMPLE_NAME))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError("the built-in example needs the 'pydicom-data' package") from exc
    if not path.is_file():
        raise FileNotFoundError(f"built-in example {EXAMPLE_NAME} missing from pydicom-data at {path}")
    return path
