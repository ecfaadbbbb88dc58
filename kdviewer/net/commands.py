"""``kdviewer listen`` and ``kdviewer pacs find|get``: the DICOM node from the command line.

This module only builds the argument parsers at import; the node itself (pynetdicom, highdicom:
about 1.6 s to import here) is imported when one of its commands runs, so the other commands do
not pay for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from kdviewer.net import DEFAULT_AE_TITLE, DEFAULT_PORT
from kdviewer.net.association import Caller, MoveVia, Peer
from kdviewer.net.config import check_ae_title, check_port

DEFAULT_STORE_GB = 20.0


def _ae_title(text: str) -> str:
    try:
        return check_ae_title(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        return check_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peer(text: str) -> Peer:
    try:
        return Peer.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub) -> None:
    """Add ``listen`` and ``pacs`` to kdviewer's sub-command parsers."""
    ls = sub.add_parser("listen", help="receive images over DICOM (C-STORE SCP), optionally score them")
    ls.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)"
    )
    ls.add_argument(
        "--ae-title",
        type=_ae_title,
        default=DEFAULT_AE_TITLE,
        help=f"this node's AE title (default {DEFAULT_AE_TITLE})",
    )
    ls.add_argument(
        "--store",
        type=Path,
        required=True,
        metavar="DIR",
        help="received images go to DIR/<StudyInstanceUID>/<SOPInstanceUID>.dcm",
    )
    ls.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)",
    )
    ls.add_argument(
        "--allow",
        nargs="+",
        type=_ae_title,
        default=[],
        metavar="AET",
        help="accept only these calling AE titles (default: any)",
    )
    ls.add_argument("--score", action="store_true", help="score each image on arrival; results beside it")
    ls.add_argument(
        "--secondary-capture",
        action="store_true",
        help="with --score: also make a Secondary Capture with the heat map",
    )
    ls.add_argument(
        "--send-to",
        type=_peer,
        metavar="HOST:PORT:AET",
        help="C-STORE the results (SR, and SC) there; implies --score",
    )
    ls.add_argument("--max-associations", type=int, default=4, help="concurrent associations (default 4)")
    ls.add_argument(
        "--max-image-mb",
        type=float,
        default=256,
        help="abort an association that sends a larger image (default 256; memory bound)",
    )
    ls.add_argument(
        "--max-store-gb",
        type=float,
        default=DEFAULT_STORE_GB,
        help=f"refuse images (status A700) once the store holds this much (default {DEFAULT_STORE_GB:g})",
    )

    pacs = sub.add_parser("pacs", help="query a PACS (C-FIND) and retrieve studies (C-GET or C-MOVE)")
    pacs_sub = pacs.add_subparsers(dest="pacs_command", metavar="{find,get}", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1", help="the PACS's address (default 127.0.0.1)")
    common.add_argument("--port", type=_port, required=True, help="the PACS's DICOM port")
    common.add_argument("--ae-title", type=_ae_title, required=True, help="the PACS's AE title")
    common.add_argument(
        "--calling-ae",
        type=_ae_title,
        default=DEFAULT_AE_TITLE,
        help=f"this node's AE title (default {DEFAULT_AE_TITLE})",
    )
    find = pacs_sub.add_parser(
        "find", parents=[common], help="studies matching the filters (C-FIND, study level)"
    )
    find.add_argument("--patient-id")
    find.add_argument("--patient-name", help="DICOM wildcards allowed: DOE^*")
    find.add_argument("--date-from", metavar="YYYYMMDD")
    find.add_argument("--date-to", metavar="YYYYMMDD")
    find.add_argument("--modality", help="e.g. CR or DX (matched against Modalities in Study)")
    find.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    get = pacs_sub.add_parser(
        "get", parents=[common], help="retrieve a study into a folder (C-GET; C-MOVE with --move)"
    )
    get.add_argument("study_uid", metavar="STUDY_UID")
    get.add_argument("--store", type=Path, required=True, metavar="DIR")
    get.add_argument(
        "--move",
        action="store_true",
        help="use C-MOVE: the PACS sends to --calling-ae, which must be configured there as this host",
    )
    get.add_argument(
        "--listen-port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"with --move: the port to receive on (default {DEFAULT_PORT})",
    )
    get.add_argument("--bind", default="127.0.0.1", help="with --move: the address to receive on")
    get.add_argument("--max-store-gb", type=float, default=DEFAULT_STORE_GB)


def listen_command(args) -> int:
    """Run the listener until SIGINT or SIGTERM. Exit status 2 when it cannot start."""
    # Lazy: kdviewer.cli imports this module for its parsers (and load_engines lives there), and
    # the network stack costs every other command about 1.1 s (python -c "import kdviewer.cli"
    # 0.26 s, with these modules 1.40 s; medians of 5, 2026-12-02).
    from kdviewer.cli import load_engines
    from kdviewer.net.arrivals import ArrivalScorer
    from kdviewer.net.listener import Listener, quiet_libraries
    from kdviewer.net.store import ReceiveStore

    quiet_libraries()
    logging.getLogger("kdviewer.net").setLevel(min(logging.INFO, logging.getLogger().level or logging.INFO))
    try:
        store = ReceiveStore(args.store, max_bytes=int(args.max_store_gb * 2**30))
    except OSError as exc:
        print(
            f"kdviewer: error: cannot use {args.store} as the store: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    scorer = None
    if args.score or args.send_to or args.secondary_capture:
        try:
            engine = load_engines(False, "auto")[0]
        except RuntimeError as exc:
            print(f"kdviewer: error: {exc}", file=sys.stderr)
            return 2
        scorer = ArrivalScorer(
            store,
            engine,
            secondary_capture=args.secondary_capture,
            send_to=args.send_to,
            calling_ae=args.ae_title,
        )
    listener = Listener(
        store,
        port=args.port,
        ae_title=args.ae_title,
        bind=args.bind,
        allow=args.allow,
        max_associations=args.max_associations,
        max_dataset_bytes=int(args.max_image_mb * 2**20),
        on_stored=scorer.submit if scorer is not None else None,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        host, port = listener.start()
    except OSError as exc:
        print(
            f"kdviewer: error: cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    print(
        f"kdviewer: listening as {args.ae_title} on {host}:{port}, storing in {args.store}"
        f"{', scoring' if scorer else ''}; Ctrl+C stops",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    listener.stop()
    if scorer is not None:
        scorer.stop(timeout=60)
    print("kdviewer: listener stopped", file=sys.stderr)
    return 0


def pacs_command(args) -> int:
    """``pacs find`` prints the matching studies; ``pacs get`` retrieves one. Exit status 0 on
    success, 1 when the PACS refused or some images failed, 2 for bad arguments."""
    # Lazy, as in listen_command: the network stack only for the network commands.
    from kdviewer.net.listener import quiet_libraries
    from kdviewer.net.scu import FIND_KEYS, find_studies, retrieve_study, study_query
    from kdviewer.net.store import ReceiveStore

    quiet_libraries()
    peer = Peer(args.host, args.port, args.ae_title)
    try:
        if args.pacs_command == "find":
            query = study_query(
                patient_id=args.patient_id,
                patient_name=args.patient_name,
                date_from=args.date_from,
                date_to=args.date_to,
                modality=args.modality,
            )
            studies = find_studies(peer, query, Caller(args.calling_ae))
            if args.json:
                print(json.dumps(studies, indent=1, ensure_ascii=False))
            else:
                print("\t".join(FIND_KEYS))
                for s in studies:
                    print("\t".join(s[k] for k in FIND_KEYS))
            return 0
        store = ReceiveStore(args.store, max_bytes=int(args.max_store_gb * 2**30))
        result = retrieve_study(
            peer,
            args.study_uid,
            store,
            Caller(args.calling_ae),
            move=MoveVia(args.listen_port, args.bind) if args.move else None,
        )
    except ValueError as exc:
        print(f"kdviewer: error: {exc}", file=sys.stderr)
        return 2
    except (ConnectionError, RuntimeError, OSError) as exc:
        print(f"kdviewer: error: {exc}", file=sys.stderr)
        return 1
    print(f"kdviewer: {args.store}: {result.summary()}", file=sys.stderr)
    return 0 if result.ok else 1
