"""Persistent viewer settings (QSettings) with typed accessors and one place for defaults."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

import kdviewer
from kdviewer.core.explain import CAM_METHODS, DEFAULT_CAM_METHOD
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.net.config import NodeConfig, PacsConfig

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


class _Setting:
    """A value kept under ``key`` in the settings, read and written as an attribute."""

    def __init__(self, key: str):
        self.key = key

    def __get__(self, settings, owner=None):
        return self if settings is None else self.read(settings)

    def __set__(self, settings, value) -> None:
        settings._s.setValue(self.key, self.stored(value))

    def read(self, settings):
        raise NotImplementedError

    def stored(self, value):
        return value


class _Flag(_Setting):
    """A yes/no setting, ``default`` where it was never set."""

    def __init__(self, key: str, default: bool):
        super().__init__(key)
        self.default = default

    def read(self, settings) -> bool:
        return settings._get_bool(self.key, self.default)

    def stored(self, value) -> bool:
        return bool(value)


class _Choice(_Setting):
    """One of ``choices``; ``default`` where it was never set or is no longer a choice."""

    def __init__(self, key: str, choices, default: str):
        super().__init__(key)
        self.choices, self.default = choices, default

    def read(self, settings) -> str:
        value = settings._get_str(self.key, self.default)
        return value if value in self.choices else self.default


class _Bytes(_Setting):
    """Qt's saved window geometry or state; None where there is none."""

    def read(self, settings) -> QByteArray | None:
        value = settings._s.value(self.key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None


class _Config(_Setting):
    """A frozen config dataclass kept field by field under ``key/<field>``; ``default`` (a dataclass
    instance) where nothing was saved (see :meth:`ViewerSettings._read_config`)."""

    def __init__(self, key: str, default):
        super().__init__(key)
        self.default = default

    def read(self, settings):
        return settings._read_config(self.key, self.default)

    def __set__(self, settings, config) -> None:
        settings._write_config(self.key, config)


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
        if (
            not resolved.is_dir()
            or resolved == package
            or package in resolved.parents
            or {"site-packages", "dist-packages"} & set(resolved.parts)
        ):
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

    colormap = _Choice("overlay/colormap", COLORMAPS, DEFAULT_COLORMAP)
    overlay_visible = _Flag("overlay/visible", True)
    finding = _Choice("overlay/finding", FINDING_KEYS, FINDING_KEYS[0])
    cam_method = _Choice("overlay/method", CAM_METHODS, DEFAULT_CAM_METHOD)
    teacher_enabled = _Flag("models/teacher_enabled", True)
    # Hide the scores and heat maps of out-of-scope images until "show anyway" (kdviewer.core.scope).
    scope_gate = _Flag("models/scope_gate", True)
    geometry = _Bytes("window/geometry")
    window_state = _Bytes("window/state")  # which panels are shown, and their sizes

    # -- the DICOM node: File > DICOM node settings… and File > Query PACS… ---------------------
    # The listener's settings as saved (``KDVIEWER_DICOM_*`` overrides are applied by its user).
    dicom_node = _Config("dicom", NodeConfig())
    pacs = _Config("pacs", PacsConfig())

    def _read_config(self, group: str, default):
        """A frozen dataclass from ``group/<field>`` keys; a field whose saved value does not
        convert to its default's type keeps the default."""
        values = {}
        for f in fields(default):
            value, fallback = self._s.value(f"{group}/{f.name}"), getattr(default, f.name)
            if value is None:
                continue
            try:
                if isinstance(fallback, tuple):  # INI files hand a one-item list back as text
                    values[f.name] = tuple(
                        str(v) for v in ([value] if isinstance(value, str) else value) if v
                    )
                else:
                    values[f.name] = type(fallback)(value)
            except (TypeError, ValueError):
                continue
        return replace(default, **values)

    def _write_config(self, group: str, config) -> None:
        for f in fields(config):
            value = getattr(config, f.name)
            self._s.setValue(f"{group}/{f.name}", list(value) if isinstance(value, tuple) else value)

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
