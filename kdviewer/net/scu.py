"""The node as a client: C-STORE results to a PACS, C-FIND studies, C-GET or C-MOVE them into the
local store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from kdviewer.net.association import Caller, MoveVia, Peer, Retrieved
from kdviewer.net.contexts import STORAGE_CLASSES, transfer_syntaxes
from kdviewer.net.listener import Listener, store_event
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

#: The caller when none is given: AE title KDVIEWER, the default timeout, no cancel, no progress.
DEFAULT_CALLER = Caller()


def _ae(caller: Caller) -> AE:
    ae = AE(ae_title=caller.ae_title)
    ae.connection_timeout = ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = caller.timeout
    return ae


def _associate(ae: AE, peer: Peer, caller: Caller, **kwargs):
    handlers = list(kwargs.pop("evt_handlers", []))
    caller.check_cancel()
    if caller.cancel is not None:
        handlers.append((evt.EVT_CONN_OPEN, caller.cancel.on_connection))
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, evt_handlers=handlers, **kwargs)
    if not assoc.is_established:
        caller.check_cancel()
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


def _status(status: Dataset | None, what: str, caller: Caller) -> int:
    if status is None or "Status" not in status:
        caller.check_cancel()  # the abort is why the answer stopped
        raise RuntimeError(f"{what}: the peer sent no response (timed out or aborted)")
    return int(status.Status)


def send(peer: Peer, datasets: Sequence[Dataset], caller: Caller = DEFAULT_CALLER) -> list[int]:
    """C-STORE ``datasets`` to ``peer`` in one association; the status of each (0 is success).
    ConnectionError when no association is made, RuntimeError when the peer stops answering."""
    ae = _ae(caller)
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in datasets):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = _associate(ae, peer, caller)
    try:
        return [_status(assoc.send_c_store(ds), "C-STORE", caller) for ds in datasets]
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


def find_studies(peer: Peer, query: Dataset, caller: Caller = DEFAULT_CALLER) -> list[dict[str, str]]:
    """C-FIND (Study Root, STUDY level): one dict of :data:`FIND_KEYS` (strings) per matching study.
    ConnectionError when no association is made (ConnectionRefusedError: the PACS rejected it),
    RuntimeError when the PACS fails the query or stops answering for ``caller.timeout`` seconds,
    :class:`~kdviewer.net.association.Cancelled` after ``caller.cancel``."""
    ae = _ae(caller)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, peer, caller)
    found = []
    try:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = _status(status, "C-FIND", caller)
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


def _count(status: Dataset, keyword: str) -> int:
    return int(status.get(keyword, 0) or 0)


def _final(responses, what: str, caller: Caller) -> Retrieved:
    last = None
    for status, _identifier in responses:
        code = _status(status, what, caller)
        last = (code, status)
        if code in (0xFF00, 0xFF01) and caller.on_progress is not None:
            done = sum(
                _count(status, f"Number{k}Suboperations") for k in ("OfCompleted", "OfFailed", "OfWarning")
            )
            caller.on_progress(done, done + _count(status, "NumberOfRemainingSuboperations"))
    caller.check_cancel()  # a PACS may answer "cancelled" (FE00) instead of seeing the abort
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
    caller: Caller = DEFAULT_CALLER,
    *,
    on_stored: Callable[[Path], None] | None = None,
) -> Retrieved:
    """C-GET a study into ``store``: the PACS sends its CR, DX and Secondary Capture images back on
    the same association (others are refused, as by the listener)."""
    identifier = _retrieve_identifier(study_uid)
    ae = _ae(caller)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    syntaxes = transfer_syntaxes()
    for sop_class in STORAGE_CLASSES:
        ae.add_requested_context(sop_class, syntaxes)
    roles = [build_role(sop_class, scp_role=True) for sop_class in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, store_event, [store, on_stored])]
    assoc = _associate(ae, peer, caller, ext_neg=roles, evt_handlers=handlers)
    try:
        responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        return _final(responses, "C-GET", caller)
    finally:
        assoc.release()


def request_move(peer: Peer, study_uid: str, destination: str, caller: Caller = DEFAULT_CALLER) -> Retrieved:
    """Ask ``peer`` to C-MOVE a study to the AE title ``destination`` (a listener the PACS knows;
    the images arrive there, not through this call)."""
    identifier = _retrieve_identifier(study_uid)
    ae = _ae(caller)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = _associate(ae, peer, caller)
    try:
        responses = assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
        return _final(responses, "C-MOVE", caller)
    finally:
        assoc.release()


def retrieve_study(
    peer: Peer,
    study_uid: str,
    store: ReceiveStore,
    caller: Caller = DEFAULT_CALLER,
    *,
    move: MoveVia | None = None,
    on_stored: Callable[[Path], None] | None = None,
) -> Retrieved:
    """Retrieve a study into ``store`` by C-GET, or by C-MOVE with ``move``: then a listener with
    AE title ``move.destination`` (default ``caller.ae_title``) runs on ``move.bind:move.port`` for
    the transfer (the PACS must know that AE title at that address). ``pacs get`` and the viewer's
    PACS dialog both come here. ValueError for an invalid UID; OSError when the port cannot be
    listened on; ConnectionError, RuntimeError or :class:`Cancelled` as for :func:`find_studies`."""
    if move is None:
        return get_study(peer, study_uid, store, caller, on_stored=on_stored)
    destination = move.destination or caller.ae_title
    listener = Listener(store, port=move.port, ae_title=destination, bind=move.bind, on_stored=on_stored)
    listener.start()
    try:
        return request_move(peer, study_uid, destination, caller)
    finally:
        listener.stop()
