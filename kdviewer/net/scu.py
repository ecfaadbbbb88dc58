"""The node as a client: C-STORE results to a PACS, C-FIND studies, C-GET or C-MOVE them into the
local store."""

from __future__ import annotations

import logging
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


def _ae(calling_ae: str) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = NETWORK_TIMEOUT_S
    return ae


def _associate(ae: AE, peer: Peer, **kwargs):
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, **kwargs)
    if not assoc.is_established:
        raise ConnectionError(
            f"no association with {peer.ae_title} at {peer.host}:{peer.port} (refused, or nothing listening)"
        )
    return assoc


def _status(status: Dataset | None, what: str) -> int:
    if status is None or "Status" not in status:
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


def find_studies(peer: Peer, query: Dataset, *, calling_ae: str = DEFAULT_AE_TITLE) -> list[dict[str, str]]:
    """C-FIND (Study Root, STUDY level): one dict of :data:`FIND_KEYS` (strings) per matching study."""
    ae = _ae(calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, peer)
    found = []
    try:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = _status(status, "C-FIND")
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


def _final(responses, what: str) -> Retrieved:
    last = None
    for status, _identifier in responses:
        code = _status(status, what)
        last = (code, status)
    if last is None:
        raise RuntimeError(f"{what}: no response")
    code, status = last
    return Retrieved(
        code,
        int(status.get("NumberOfCompletedSuboperations", 0) or 0),
        int(status.get("NumberOfFailedSuboperations", 0) or 0),
        int(status.get("NumberOfWarningSuboperations", 0) or 0),
    )


def get_study(
    peer: Peer,
    study_uid: str,
    store: ReceiveStore,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    on_stored: Callable[[Path], None] | None = None,
) -> Retrieved:
    """C-GET a study into ``store``: the PACS sends its CR, DX and Secondary Capture images back on
    the same association (others are refused, as by the listener)."""
    identifier = _retrieve_identifier(study_uid)
    ae = _ae(calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    syntaxes = transfer_syntaxes()
    for sop_class in STORAGE_CLASSES:
        ae.add_requested_context(sop_class, syntaxes)
    roles = [build_role(sop_class, scp_role=True) for sop_class in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, store_event, [store, on_stored])]
    assoc = _associate(ae, peer, ext_neg=roles, evt_handlers=handlers)
    try:
        return _final(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet), "C-GET")
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
) -> Retrieved:
    """C-MOVE a study into ``store``: a listener with AE title ``calling_ae`` runs on
    ``bind:listen_port`` for the transfer (the PACS must know that AE title at that address)."""
    identifier = _retrieve_identifier(study_uid)
    listener = Listener(store, port=listen_port, ae_title=calling_ae, bind=bind, on_stored=on_stored)
    listener.start()
    try:
        ae = _ae(calling_ae)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = _associate(ae, peer)
        try:
            return _final(
                assoc.send_c_move(identifier, calling_ae, StudyRootQueryRetrieveInformationModelMove),
                "C-MOVE",
            )
        finally:
            assoc.release()
    finally:
        listener.stop()
