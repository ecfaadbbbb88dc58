#!/usr/bin/env bash
# A local PACS demo in one command: Orthanc (loopback only, a throw-away configuration) holds the
# built-in example chest X-ray and pushes it to `kdviewer listen`, which scores it and sends a
# structured report and a heat-map secondary capture back to Orthanc. Browse them in Orthanc
# Explorer, then Ctrl+C stops everything and removes the temporary folder.
#
#   scripts/orthanc_demo.sh            # keeps running until Ctrl+C
#   scripts/orthanc_demo.sh --no-wait  # stops after the results have arrived (used to check it)
#
# Needs Orthanc (Debian/Ubuntu: apt-get install orthanc) and kdviewer (make setup). Ports:
# KDV_DEMO_HTTP (default 8043) and KDV_DEMO_DICOM (4243) for Orthanc, KDV_DEMO_LISTEN (11112).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HTTP=${KDV_DEMO_HTTP:-8043}
DICOM=${KDV_DEMO_DICOM:-4243}
LISTEN=${KDV_DEMO_LISTEN:-11112}
command -v Orthanc >/dev/null || { echo "Orthanc is not installed (apt-get install orthanc)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$work/orthanc.json" <<JSON
{"Name": "kdviewer-demo", "HttpPort": $HTTP, "DicomPort": $DICOM, "DicomAet": "ORTHANC",
 "StorageDirectory": "$work/orthanc-db", "IndexDirectory": "$work/orthanc-db",
 "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "Plugins": [],
 "DicomAlwaysAllowStore": true, "DicomCheckModalityHost": false,
 "DicomModalities": {"kdviewer": ["KDVIEWER", "127.0.0.1", $LISTEN]}}
JSON
Orthanc "$work/orthanc.json" >"$work/orthanc.log" 2>&1 & pids+=($!)
"$PY" -m kdviewer.cli listen --port "$LISTEN" --store "$work/received" --score --secondary-capture \
    --send-to "127.0.0.1:$DICOM:ORTHANC" 2>"$work/listen.log" & pids+=($!)

"$PY" - "$HTTP" "$LISTEN" <<'PY'
import json, socket, sys, time, urllib.request
from kdviewer.core.resources import example_image

http, listen = int(sys.argv[1]), int(sys.argv[2])
def rest(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}", data=body, method=method)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
for port in (http, listen):  # wait for Orthanc and the listener
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close(); break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit(f"nothing listening on port {port}")
up = rest("POST", "/instances", open(example_image(), "rb").read())
print(f"uploaded the example to Orthanc; pushing study {up['ParentStudy']} to kdviewer listen")
rest("POST", "/modalities/kdviewer/store", json.dumps({"Resources": [up["ParentStudy"]], "Synchronous": True}).encode())
for _ in range(600):
    series = rest("GET", f"/studies/{up['ParentStudy']}/series")
    if len(series) >= 3:
        break
    time.sleep(0.2)
for s in series:
    tags = s["MainDicomTags"]
    print(f"  Orthanc has series: {tags.get('Modality', '?'):3} {tags.get('SeriesDescription', '')}")
print(f"Orthanc Explorer: http://127.0.0.1:{http}/app/explorer.html#study?uuid={up['ParentStudy']}")
PY
echo "kdviewer's store and results:"; find "$work/received" -type f | sed "s|$work/||"
if [ "${1:-}" != "--no-wait" ]; then
    echo "Ctrl+C stops Orthanc and the listener and removes $work"
    wait
fi
