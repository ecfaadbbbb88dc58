"""The node's settings as typed values (what the viewer keeps between runs), and the checks of AE
titles and ports that the command line and the viewer's dialogs share. Imports no network library."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from kdviewer.net import DEFAULT_AE_TITLE, DEFAULT_PORT

LOOPBACK = "127.0.0.1"


def check_ae_title(text: str) -> str:
    """``text`` stripped, if it is an AE title (1-16 printable ASCII characters, no backslash);
    ValueError saying why not."""
    text = str(text).strip()
    if not 0 < len(text) <= 16 or not text.isascii() or "\\" in text or not text.isprintable():
        raise ValueError(f"{text!r} is not an AE title (1-16 ASCII characters, no backslash)")
    return text


def check_port(value, *, allow_any: bool = True) -> int:
    """A TCP port: 1-65535, or 0 (any free port) when ``allow_any``; ValueError otherwise."""
    text = str(value).strip()
    low = 0 if allow_any else 1
    if not text.isdigit() or not low <= int(text) < 65536:
        raise ValueError(f"{text!r} is not a port ({low}-65535)")
    return int(text)


@dataclass(frozen=True)
class NodeConfig:
    """The listener: where it binds, its AE title, where images go (empty: the viewer's default
    folder) and which calling AE titles it accepts (all when empty)."""

    port: int = DEFAULT_PORT
    ae_title: str = DEFAULT_AE_TITLE
    store: str = ""
    bind: str = LOOPBACK
    allow: tuple[str, ...] = ()

    def checked(self) -> NodeConfig:
        """The same, validated (ValueError naming the field that is wrong)."""
        if not self.bind.strip():
            raise ValueError("the bind address is empty (127.0.0.1: this computer only)")
        return replace(
            self,
            port=check_port(self.port),
            ae_title=check_ae_title(self.ae_title),
            bind=self.bind.strip(),
            allow=tuple(check_ae_title(a) for a in self.allow),
        )

    def with_environment(self, environ: Mapping[str, str] = os.environ) -> NodeConfig:
        """``KDVIEWER_DICOM_PORT``, ``KDVIEWER_DICOM_AE_TITLE`` and ``KDVIEWER_DICOM_STORE`` override
        the saved values (headless runs, tests)."""
        changes = {}
        if environ.get("KDVIEWER_DICOM_PORT"):
            changes["port"] = check_port(environ["KDVIEWER_DICOM_PORT"])
        if environ.get("KDVIEWER_DICOM_AE_TITLE"):
            changes["ae_title"] = check_ae_title(environ["KDVIEWER_DICOM_AE_TITLE"])
        if environ.get("KDVIEWER_DICOM_STORE"):
            changes["store"] = environ["KDVIEWER_DICOM_STORE"]
        return replace(self, **changes)


@dataclass(frozen=True)
class PacsConfig:
    """The PACS the viewer queries: its address and AE title; ``move_destination``, when set, is
    the AE title the PACS knows this computer by for C-MOVE (empty: retrieve by C-GET)."""

    host: str = ""
    port: int = 104
    ae_title: str = ""
    move_destination: str = ""
    timeout_s: float = 30.0

    def checked(self) -> PacsConfig:
        """The same, validated (ValueError naming what is missing or wrong)."""
        if not self.host.strip():
            raise ValueError("enter the PACS's host name or address")
        if not self.ae_title.strip():
            raise ValueError("enter the PACS's AE title")
        if not 0 < float(self.timeout_s) <= 600:
            raise ValueError("the timeout must be between 1 and 600 seconds")
        return replace(
            self,
            host=self.host.strip(),
            port=check_port(self.port, allow_any=False),
            ae_title=check_ae_title(self.ae_title),
            move_destination=check_ae_title(self.move_destination) if self.move_destination.strip() else "",
        )
