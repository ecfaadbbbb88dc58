"""The C-STORE SCP: receives CR, DX and Secondary Capture images into a :class:`ReceiveStore`.

Unsupported SOP classes and transfer syntaxes are refused at association (their presentation
contexts are rejected); calling AE titles can be restricted; concurrent associations are bounded;
a data set that does not parse, does not match its request or carries invalid UIDs is refused
with a status and never written. A peer that disconnects mid-transfer leaves nothing behind:
pynetdicom hands the data set over only once it is complete, and the store writes atomically.
No patient identifiers are logged (instances appear as a short hash of their UID).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom.config
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from kdviewer.net import DEFAULT_AE_TITLE, DEFAULT_PORT, NETWORK_TIMEOUT_S
from kdviewer.net.contexts import STORAGE_CLASSES, transfer_syntaxes
from kdviewer.net.store import ReceiveStore, StoreFullError, is_valid_uid, short_id

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 Table B.2-1).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000

# pynetdicom holds a data set in memory until it is complete: an association that sends more than
# this for one image is aborted, so memory stays under max_associations times this.
MAX_DATASET_BYTES = 256 * 1024 * 1024


def quiet_libraries() -> None:
    """Keep patient data out of the log: pynetdicom's debug log prints whole data sets, and
    pydicom's validation warnings quote the invalid values (a malformed name, say)."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def store_event(event, store: ReceiveStore, on_stored: Callable[[Path], None] | None = None) -> int:
    """Handle one C-STORE request (the listener's, and C-GET's incoming sub-operations): validate
    the data set, write it to ``store`` and call ``on_stored`` with its path when it is new."""
    peer = event.assoc.requestor.ae_title
    try:
        ds = event.dataset
        sop_class, sop_uid = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
        study_uid = ds.get("StudyInstanceUID")
    except Exception as exc:  # noqa: BLE001 - whatever pydicom raises on a malformed data set
        log.warning("refused a malformed data set from %s (%s)", peer, type(exc).__name__)
        return CANNOT_UNDERSTAND
    request = event.request
    if not all(is_valid_uid(str(u)) if u is not None else False for u in (sop_class, sop_uid, study_uid)):
        log.warning("refused a data set from %s without valid SOP Class, SOP Instance and Study UIDs", peer)
        return CANNOT_UNDERSTAND
    if sop_uid != request.AffectedSOPInstanceUID or sop_class != request.AffectedSOPClassUID:
        log.warning(
            "refused instance %s from %s: its UIDs differ from the request's", short_id(sop_uid), peer
        )
        return DATASET_MISMATCH
    try:
        stored = store.put(str(study_uid), str(sop_uid), event.encoded_dataset(include_meta=True))
    except StoreFullError as exc:
        log.error("refused instance %s from %s: %s", short_id(sop_uid), peer, exc)
        return OUT_OF_RESOURCES
    except OSError as exc:
        log.error("could not write instance %s from %s: %s", short_id(sop_uid), peer, exc.strerror or exc)
        return OUT_OF_RESOURCES
    if stored.new:
        log.info("stored instance %s from %s", short_id(sop_uid), peer)
        if on_stored is not None:
            on_stored(stored.path)
    else:
        log.info("instance %s from %s was already stored", short_id(sop_uid), peer)
    return SUCCESS


class Listener:
    """A C-STORE SCP (and C-ECHO, so peers can test the connection) on ``bind:port``.

    ``allow``: calling AE titles accepted (all when empty). ``on_stored`` is called from the
    association's thread with the path of each new instance; keep it short (queue the work).
    """

    def __init__(
        self,
        store: ReceiveStore,
        *,
        port: int = DEFAULT_PORT,
        ae_title: str = DEFAULT_AE_TITLE,
        bind: str = "127.0.0.1",
        allow: Sequence[str] = (),
        max_associations: int = 4,
        max_dataset_bytes: int = MAX_DATASET_BYTES,
        on_stored: Callable[[Path], None] | None = None,
    ):
        self.store, self.on_stored = store, on_stored
        self.max_dataset_bytes = int(max_dataset_bytes)
        self._received: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # association -> bytes
        self._received_lock = threading.Lock()
        self.address = (bind, int(port))
        self.ae = AE(ae_title=ae_title)
        self.ae.maximum_associations = int(max_associations)
        self.ae.network_timeout = self.ae.acse_timeout = self.ae.dimse_timeout = NETWORK_TIMEOUT_S
        self.ae.require_calling_aet = list(allow)
        syntaxes = transfer_syntaxes()
        for sop_class in STORAGE_CLASSES:
            self.ae.add_supported_context(sop_class, syntaxes)
        self.ae.add_supported_context(Verification)
        self._server = None

    def start(self) -> tuple[str, int]:
        """Start serving in background threads; returns the bound address (port 0: a free one)."""
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_DATA_RECV, self._on_data),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._server = self.ae.start_server(self.address, block=False, evt_handlers=handlers)
        host, port = self._server.server_address[:2]
        log.info("listening as %s on %s:%d", self.ae.ae_title, host, port)
        return host, port

    def _on_store(self, event) -> int:
        with self._received_lock:
            self._received[event.assoc] = 0  # the next message starts from nothing
        return store_event(event, self.store, self.on_stored)

    def _on_data(self, event) -> None:
        with self._received_lock:
            total = self._received.get(event.assoc, 0) + len(event.data)
            self._received[event.assoc] = total
        if total > self.max_dataset_bytes and not event.assoc.is_aborted:
            log.error(
                "aborted the association with %s: more than %d bytes for one image",
                event.assoc.requestor.ae_title,
                self.max_dataset_bytes,
            )
            event.assoc.abort(block=False)

    @staticmethod
    def _on_rejected(event) -> None:
        log.warning("refused an association from %s", event.assoc.requestor.ae_title)

    def stop(self) -> None:
        """Stop accepting and close open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
