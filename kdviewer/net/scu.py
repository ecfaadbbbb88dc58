"""The node as a client: C-STORE results to a PACS, C-FIND studies, C-GET or C-MOVE them into the
local store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from kdviewer.net import DEFAULT_AE_TITLE
from kdviewer.net.contexts import STORAGE_CLASSES, transfer_syntaxes
from kdviewer.net.listener import NETWORK_TIMEOUT_S, Listener, store_event
from kdviewer.net.store import ReceiveStore, is_valid_uid

log = logging.getLogger(__name__)

#: What ``pacs find`` asks for and reports, in this order.
FIND_KEYS = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyDescription",
    "NumberOfStudyRelatedInstances",
)


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

    def _on_connection(self, event) -> None:
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


def _ae(calling_ae: str, timeout: float = NETWORK_TIMEOUT_S) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = timeout
    return ae


def _associate(ae: AE, peer: Peer, cancel: Cancel | None = None, **kwargs):
    handlers = list(kwargs.pop("evt_handlers", []))
    if cancel is not None:
        cancel.check()
        handlers.append((evt.EVT_CONN_OPEN, cancel._on_connection))
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, evt_handlers=handlers, **kwargs)
    if cancel is not None and not assoc.is_established:
        cancel.check()
    where = f"{peer.ae_title} at {peer.host}:{peer.port}"
    if assoc.is_rejected:
        raise ConnectionRefusedError(
            f"{where} rejected the association (does it know the calling AE title {ae.ae_title}?)"
        )
    if not assoc.is_established:
        raise ConnectionError(
            f"no association with {where}: nothing listening there, or no answer within {ae.acse_timeout:g} s"
        )
    return assoc


def _status(status: Dataset | None, what: str, cancel: Cancel | None = None) -> int:
    if status is None or "Status" not in status:
        if cancel is not None:
            cancel.check()  # the abort is why the answer stopped
        raise RuntimeError(f"{what}: the peer sent no response (timed out or aborted)")
    return int(status.Status)


def send(peer: Peer, datasets: Sequence[Dataset], *, calling_ae: str = DEFAULT_AE_TITLE) -> list[int]:
    """C-STORE ``datasets`` to ``peer`` in one association; the status of each (0 is success).
    ConnectionError when no association is made, RuntimeError when the peer stops answering."""
    ae = _ae(calling_ae)
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in datasets):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = _associate(ae, peer)
    try:
        return [_status(assoc.send_c_store(ds), "C-STORE") for ds in datasets]
    finally:
        assoc.release()


def study_query(
    *,
    patient_id: str | None = None,
    patient_name: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    modality: str | None = None,
) -> Dataset:
    """A study-level C-FIND identifier; dates are YYYYMMDD, names may use DICOM wildcards (* ?)."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    for key in FIND_KEYS:
        setattr(q, key, "")
    q.PatientID = patient_id or ""
    q.PatientName = patient_name or ""
    for value in (date_from, date_to):
        if value and not (len(value) == 8 and value.isdigit()):
            raise ValueError(f"dates are YYYYMMDD, not {value!r}")
    if date_from or date_to:
        q.StudyDate = f"{date_from or ''}-{date_to or ''}"
    q.ModalitiesInStudy = modality or ""
    return q


def find_studies(
    peer: Peer,
    query: Dataset,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    timeout: float = NETWORK_TIMEOUT_S,
    cancel: Cancel | None = None,
) -> list[dict[str, str]]:
    """C-FIND (Study Root, STUDY level): one dict of :data:`FIND_KEYS` (strings) per matching study.
    ConnectionError when no association is made (ConnectionRefusedError: the PACS rejected it),
    RuntimeError when the PACS fails the query or stops answering for ``timeout`` seconds,
    :class:`Cancelled` after ``cancel``."""
    ae = _ae(calling_ae, timeout)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, peer, cancel)
    found = []
    try:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = _status(status, "C-FIND", cancel)
            if code in (0xFF00, 0xFF01) and identifier is not None:
                found.append({k: _text(identifier.get(k)) for k in FIND_KEYS})
            elif code != 0x0000:
                raise RuntimeError(f"C-FIND failed with status 0x{code:04X}")
    finally:
        assoc.release()
    return found


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _retrieve_identifier(study_uid: str) -> Dataset:
    if not is_valid_uid(study_uid):
        raise ValueError(f"{study_uid!r} is not a valid Study Instance UID")
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study_uid
    return q


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


#: ``on_progress(done, total)``: sub-operations done so far, and their total, as the PACS reports.
ProgressCallback = Callable[[int, int], None]


def _count(status: Dataset, keyword: str) -> int:
    return int(status.get(keyword, 0) or 0)


def _final(responses, what: str, cancel: Cancel | None, on_progress: ProgressCallback | None) -> Retrieved:
    last = None
    for status, _identifier in responses:
        code = _status(status, what, cancel)
        last = (code, status)
        if code in (0xFF00, 0xFF01) and on_progress is not None:
            done = sum(
                _count(status, f"Number{k}Suboperations") for k in ("OfCompleted", "OfFailed", "OfWarning")
            )
            on_progress(done, done + _count(status, "NumberOfRemainingSuboperations"))
    if cancel is not None:
        cancel.check()  # a PACS may answer "cancelled" (FE00) instead of seeing the abort
    if last is None:
        raise RuntimeError(f"{what}: no response")
    code, status = last
    return Retrieved(
        code,
        _count(status, "NumberOfCompletedSuboperations"),
        _count(status, "NumberOfFailedSuboperations"),
        _count(status, "NumberOfWarningSuboperations"),
    )


def get_study(
    peer: Peer,
    study_uid: str,
    store: ReceiveStore,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    on_stored: Callable[[Path], None] | None = None,
    on_progress: ProgressCallback | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    cancel: Cancel | None = None,
) -> Retrieved:
    """C-GET a study into ``store``: the PACS sends its CR, DX and Secondary Capture images back on
    the same association (others are refused, as by the listener)."""
    identifier = _retrieve_identifier(study_uid)
    ae = _ae(calling_ae, timeout)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    syntaxes = transfer_syntaxes()
    for sop_class in STORAGE_CLASSES:
        ae.add_requested_context(sop_class, syntaxes)
    roles = [build_role(sop_class, scp_role=True) for sop_class in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, store_event, [store, on_stored])]
    assoc = _associate(ae, peer, cancel, ext_neg=roles, evt_handlers=handlers)
    try:
        responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        return _final(responses, "C-GET", cancel, on_progress)
    finally:
        assoc.release()


def request_move(
    peer: Peer,
    study_uid: str,
    destination: str,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    on_progress: ProgressCallback | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    cancel: Cancel | None = None,
) -> Retrieved:
    """Ask ``peer`` to C-MOVE a study to the AE title ``destination`` (a listener the PACS knows;
    the images arrive there, not through this call)."""
    identifier = _retrieve_identifier(study_uid)
    ae = _ae(calling_ae, timeout)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = _associate(ae, peer, cancel)
    try:
        responses = assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
        return _final(responses, "C-MOVE", cancel, on_progress)
    finally:
        assoc.release()


def move_study(
    peer: Peer,
    study_uid: str,
    store: ReceiveStore,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    listen_port: int,
    bind: str = "127.0.0.1",
    on_stored: Callable[[Path], None] | None = None,
    on_progress: ProgressCallback | None = None,
    destination: str | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    cancel: Cancel | None = None,
) -> Retrieved:
    """C-MOVE a study into ``store``: a listener with AE title ``destination`` (default
    ``calling_ae``) runs on ``bind:listen_port`` for the transfer (the PACS must know that AE title
    at that address). OSError when that port cannot be listened on."""
    destination = destination or calling_ae
    listener = Listener(store, port=listen_port, ae_title=destination, bind=bind, on_stored=on_stored)
    listener.start()
    try:
        return request_move(
            peer,
            study_uid,
            destination,
            calling_ae=calling_ae,
            on_progress=on_progress,
            timeout=timeout,
            cancel=cancel,
        )
    finally:
        listener.stop()


@dataclass(frozen=True)
class MoveVia:
    """Retrieve by C-MOVE: the PACS sends to the AE title ``destination`` (default: the calling AE
    title), which it knows at this machine's address and ``port``; a listener runs on
    ``bind:port`` for the transfer."""

    port: int
    bind: str = "127.0.0.1"
    destination: str | None = None


def retrieve_study(
    peer: Peer,
    study_uid: str,
    store: ReceiveStore,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    move: MoveVia | None = None,
    on_stored: Callable[[Path], None] | None = None,
    on_progress: ProgressCallback | None = None,
    timeout: float = NETWORK_TIMEOUT_S,
    cancel: Cancel | None = None,
) -> Retrieved:
    """Retrieve a study into ``store`` by C-GET, or by C-MOVE with ``move`` (``pacs get`` and the
    viewer's PACS dialog both come here). ValueError for an invalid UID; ConnectionError, OSError,
    RuntimeError or :class:`Cancelled` as for :func:`find_studies`."""
    common = {"calling_ae": calling_ae, "on_stored": on_stored, "on_progress": on_progress}
    if move is None:
        return get_study(peer, study_uid, store, **common, timeout=timeout, cancel=cancel)
    return move_study(
        peer,
        study_uid,
        store,
        **common,
        listen_port=move.port,
        bind=move.bind,
        destination=move.destination,
        timeout=timeout,
        cancel=cancel,
    )
