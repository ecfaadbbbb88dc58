"""Who takes part in an association and how a retrieval ended: the remote :class:`Peer`, the
:class:`Caller` (this node's AE title, timeout, cancel token, progress callback), :class:`Cancel`
and :class:`Retrieved`. Imports no network library, so the viewer's PACS dialog can use these on
the GUI thread while pynetdicom (about 1 s to import) loads on a worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from kdviewer.net import DEFAULT_AE_TITLE, NETWORK_TIMEOUT_S


@dataclass(frozen=True)
class Peer:
    """A remote node: host, port and AE title."""

    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> Peer:
        """``HOST:PORT:AET``; ValueError naming what is wrong."""
        rest, _, aet = text.rpartition(":")
        host, _, port = rest.rpartition(":")
        if not (host and aet):
            raise ValueError(f"{text!r} is not HOST:PORT:AET")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: the port must be 1-65535")
        if len(aet) > 16:
            raise ValueError(f"{text!r}: an AE title has at most 16 characters")
        return cls(host, int(port), aet)


class Cancelled(Exception):
    """The operation was cancelled (:class:`Cancel`) before it finished."""


class Cancel:
    """Cancels a query or retrieval from another thread (a GUI's Cancel button): the association
    is aborted, or, while it is still being negotiated with a PACS that does not answer, its
    connection is closed; the operation then raises :class:`Cancelled`. Images already stored
    stay (each was written whole)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._assocs: list = []
        self.requested = False

    def cancel(self) -> None:
        with self._lock:
            self.requested = True
            assocs = list(self._assocs)
        for assoc in assocs:
            _drop(assoc)

    def on_connection(self, event) -> None:
        """pynetdicom's EVT_CONN_OPEN handler: remember the association, drop it if cancelled."""
        with self._lock:
            self._assocs.append(event.assoc)
            requested = self.requested
        if requested:
            _drop(event.assoc)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancelling was asked for."""
        if self.requested:
            raise Cancelled("cancelled")


def _drop(assoc) -> None:
    if assoc.is_established:
        assoc.abort(block=False)
    elif assoc.dul.socket is not None:  # still negotiating: nothing else wakes the requestor up
        assoc.dul.socket.close()


#: ``on_progress(done, total)``: sub-operations done so far, and their total, as the PACS reports.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Caller:
    """The calling side of an association: this node's AE title, how long to wait for the peer
    (connecting, negotiating, each answer), what may cancel it, and who hears of a retrieval's
    progress."""

    ae_title: str = DEFAULT_AE_TITLE
    timeout: float = NETWORK_TIMEOUT_S
    cancel: Cancel | None = None
    on_progress: ProgressCallback | None = None

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` if the cancel token was used."""
        if self.cancel is not None:
            self.cancel.check()


@dataclass(frozen=True)
class MoveVia:
    """Retrieve by C-MOVE: the PACS sends to the AE title ``destination`` (default: the calling AE
    title), which it knows at this machine's address and ``port``; a listener runs on
    ``bind:port`` for the transfer."""

    port: int
    bind: str = "127.0.0.1"
    destination: str | None = None


@dataclass(frozen=True)
class Retrieved:
    """The outcome of a C-GET or C-MOVE: the final status and the sub-operation counts."""

    status: int
    completed: int
    failed: int
    warning: int

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.failed == 0

    def summary(self) -> str:
        """One line for a person: the counts, and why images may have failed."""
        text = (
            f"retrieved {self.completed} image(s); {self.failed} failed, {self.warning} with warnings"
            f" (final status 0x{self.status:04X})"
        )
        if self.failed:
            text += (
                "; only CR, DX and Secondary Capture images are retrieved, and the PACS counts other"
                " objects of the study (a structured report, say) as failed"
            )
        return text
