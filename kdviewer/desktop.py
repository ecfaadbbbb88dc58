"""Linux desktop integration: a user-level ``.desktop`` entry and icon, so that a file manager
offers kdviewer for DICOM, PNG and JPEG files (``kdviewer --install-desktop``), and their removal
(``kdviewer --uninstall-desktop``).

Both go under ``$XDG_DATA_HOME`` (default ``~/.local/share``), as the XDG specifications say: the
entry in ``applications/``, the icon in ``icons/hicolor/scalable/apps/``. Nothing is written
elsewhere and no administrator rights are needed. The entry starts the kdviewer that installed it
(the bundle's executable, or this environment's ``kdviewer`` script) with the chosen files
(``%F``). Uninstalling removes only an entry that carries kdviewer's own mark, so a file the user
wrote by hand under that name is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kdviewer import __version__
from kdviewer.core.resources import icon_path

log = logging.getLogger(__name__)

APP_ID = "kdviewer"
MIME_TYPES = ("application/dicom", "image/png", "image/jpeg")
MARK = "X-KDViewer-Installed=true"
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")  # an Exec argument holding one of these is quoted


def data_home() -> Path:
    """``$XDG_DATA_HOME`` when it is an absolute path (the specification ignores others), else
    ``~/.local/share``."""
    env = os.environ.get("XDG_DATA_HOME", "")
    return Path(env) if os.path.isabs(env) else Path.home() / ".local" / "share"


def desktop_file() -> Path:
    """Where the user-level entry goes."""
    return data_home() / "applications" / f"{APP_ID}.desktop"


def icon_file() -> Path:
    """Where the icon goes (hicolor theme, scalable)."""
    return data_home() / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"


def launch_command() -> list[str]:
    """The command that starts this kdviewer: the bundle's executable when frozen, else the
    ``kdviewer`` script beside this Python (a virtual environment's ``bin``), else ``python -m
    kdviewer``. Absolute paths, since a file manager's ``PATH`` may not hold the environment."""
    exe = Path(sys.executable).absolute()
    if getattr(sys, "frozen", False):
        return [str(exe)]
    script = exe.parent / APP_ID
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(exe), "-m", APP_ID]


def _exec_arg(arg: str) -> str:
    """One argument of an ``Exec`` key, quoted and escaped as the Desktop Entry specification asks
    (inside quotes, backslash-escape ``"`` `` ` `` ``$`` ``\\``; then, the key being a string,
    every backslash doubled; ``%`` written ``%%``)."""
    arg = arg.replace("%", "%%")
    if not arg or any(c in _RESERVED for c in arg):
        arg = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
    return arg.replace("\\", "\\\\")


def desktop_entry(command: list[str]) -> str:
    """The text of the ``.desktop`` file that runs ``command`` with the chosen files."""
    exec_line = " ".join(_exec_arg(a) for a in command) + " %F"
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.4",
            "Name=kdviewer",
            "GenericName=Chest X-ray viewer",
            "Comment=Offline chest X-ray viewer with AI scores and heat maps."
            " Research use only, not for diagnosis.",
            f"Exec={exec_line}",
            f"TryExec={command[0]}",
            f"Icon={APP_ID}",
            "Terminal=false",
            "Categories=Science;MedicalSoftware;",  # one main category, or menus list it twice
            "MimeType=" + ";".join(MIME_TYPES) + ";",
            "Keywords=DICOM;X-ray;radiograph;chest;",
            f"X-KDViewer-Version={__version__}",
            MARK,
            "",
        ]
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _refresh_caches() -> None:
    """Let the desktop see the change now: update the MIME and icon caches where the tools exist
    (without them the desktop picks the entry up on its next scan)."""
    for tool, target in (
        ("update-desktop-database", desktop_file().parent),
        ("gtk-update-icon-cache", data_home() / "icons" / "hicolor"),
    ):
        exe = shutil.which(tool)
        if exe is None or not target.is_dir():
            continue
        args = (
            [exe, "-q", str(target)] if tool == "update-desktop-database" else [exe, "-q", "-t", str(target)]
        )
        try:
            subprocess.run(args, check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("%s did not run (%s)", tool, exc)


def install_desktop() -> list[Path]:
    """Write the entry and the icon (replacing earlier ones); return their paths."""
    entry, icon = desktop_file(), icon_file()
    _write(icon, icon_path(f"{APP_ID}.svg").read_bytes())
    _write(entry, desktop_entry(launch_command()).encode("utf-8"))
    _refresh_caches()
    return [entry, icon]


def uninstall_desktop() -> list[Path]:
    """Remove the entry (only if kdviewer wrote it) and the icon; return what was removed."""
    removed = []
    entry, icon = desktop_file(), icon_file()
    try:
        ours = MARK in entry.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        ours = False
    if ours:
        entry.unlink()
        removed.append(entry)
        if icon.is_file():
            icon.unlink()
            removed.append(icon)
        _refresh_caches()
    elif entry.exists():
        log.warning("%s was not written by kdviewer; left in place", entry)
    return removed
