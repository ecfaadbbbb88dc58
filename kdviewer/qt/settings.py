"""Persistent viewer settings (QSettings) with typed accessors and one place for defaults."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

import kdviewer
from kdviewer.core.explain import CAM_METHODS, DEFAULT_CAM_METHOD
from kdviewer.core.findings import FINDING_KEYS

ORGANIZATION = "kdviewer"
APPLICATION = "kdviewer"
MAX_RECENT = 10

DEFAULT_COLORMAP = "inferno"
DEFAULT_OPACITY = 0.45
COLORMAPS = ("inferno", "magma", "turbo", "viridis", "plasma", "CET-L3")


def make_qsettings(path: str | Path | None = None) -> QSettings:
    """The user's settings (native format) or, given ``path``, an INI file (tests, screenshots)."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


class ViewerSettings:
    """Typed view of the values the viewer keeps between runs."""

    def __init__(self, qsettings: QSettings | None = None):
        self._s = qsettings if qsettings is not None else make_qsettings()

    @property
    def qsettings(self) -> QSettings:
        return self._s

    def sync(self) -> None:
        self._s.sync()

    # -- plain values -----------------------------------------------------------------------
    def _get_str(self, key: str, default: str) -> str:
        value = self._s.value(key, default)
        return str(value) if value is not None else default

    def _get_bool(self, key: str, default: bool) -> bool:
        value = self._s.value(key, default)
        if isinstance(value, str):  # INI files hand booleans back as text
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    @property
    def last_folder(self) -> str:
        """Where Open dialogs start: the last folder opened from, else home; never a folder that
        is gone or lies inside the installed package (its built-in example)."""
        home = str(Path.home())
        folder = Path(self._get_str("files/last_folder", home))
        package = Path(kdviewer.__file__).resolve().parent
        try:
            resolved = folder.resolve()
        except OSError:
            return home
        if not resolved.is_dir() or resolved == package or package in resolved.parents \
                or {"site-packages", "dist-packages"} & set(resolved.parts):
            return home
        return str(folder)

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self._s.setValue("files/last_folder", str(folder))

    @property
    def overlay_opacity(self) -> float:
        try:
            value = float(self._s.value("overlay/opacity", DEFAULT_OPACITY))
        except (TypeError, ValueError):
            value = DEFAULT_OPACITY
        return min(1.0, max(0.0, value))

    @overlay_opacity.setter
    def overlay_opacity(self, value: float) -> None:
        self._s.setValue("overlay/opacity", float(value))

    @property
    def colormap(self) -> str:
        name = self._get_str("overlay/colormap", DEFAULT_COLORMAP)
        return name if name in COLORMAPS else DEFAULT_COLORMAP

    @colormap.setter
    def colormap(self, name: str) -> None:
        self._s.setValue("overlay/colormap", name)

    @property
    def overlay_visible(self) -> bool:
        return self._get_bool("overlay/visible", True)

    @overlay_visible.setter
    def overlay_visible(self, on: bool) -> None:
        self._s.setValue("overlay/visible", bool(on))

    @property
    def finding(self) -> str:
        key = self._get_str("overlay/finding", FINDING_KEYS[0])
        return key if key in FINDING_KEYS else FINDING_KEYS[0]

    @finding.setter
    def finding(self, key: str) -> None:
        self._s.setValue("overlay/finding", key)

    @property
    def cam_method(self) -> str:
        method = self._get_str("overlay/method", DEFAULT_CAM_METHOD)
        return method if method in CAM_METHODS else DEFAULT_CAM_METHOD

    @cam_method.setter
    def cam_method(self, method: str) -> None:
        self._s.setValue("overlay/method", method)

    @property
    def teacher_enabled(self) -> bool:
        return self._get_bool("models/teacher_enabled", True)

    @teacher_enabled.setter
    def teacher_enabled(self, on: bool) -> None:
        self._s.setValue("models/teacher_enabled", bool(on))

    @property
    def scope_gate(self) -> bool:
        """Hide the scores and heat maps of out-of-scope images until "show anyway" (kdviewer.core.scope)."""
        return self._get_bool("models/scope_gate", True)

    @scope_gate.setter
    def scope_gate(self, on: bool) -> None:
        self._s.setValue("models/scope_gate", bool(on))

    @property
    def geometry(self) -> QByteArray | None:
        value = self._s.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._s.setValue("window/geometry", value)

    @property
    def window_state(self) -> QByteArray | None:
        value = self._s.value("window/state")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self._s.setValue("window/state", value)

    # -- recent files -----------------------------------------------------------------------
    @property
    def recent_files(self) -> list[str]:
        value = self._s.value("files/recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])][:MAX_RECENT]

    def add_recent(self, path: str) -> list[str]:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files if p != path]
        items.insert(0, path)
        items = items[:MAX_RECENT]
        self._s.setValue("files/recent", items)
        return items

    def clear_recent(self) -> None:
        self._s.setValue("files/recent", [])
