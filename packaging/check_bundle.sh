#!/bin/sh
# `make bundle-check`: run the bundle's `predict` and `screenshot` as a clinic laptop would, with
# the network blocked (a fresh network namespace, `unshare -n`: no interface but loopback), an
# empty HOME, a bare environment, and strace watching for any Internet socket. Prints the times.
set -eu
BUNDLE=$(cd "${1:-dist/kdviewer}" && pwd)
EXE="$BUNDLE/kdviewer"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/home"

if unshare -n true 2>/dev/null; then NET="unshare -n"
elif unshare -rn true 2>/dev/null; then NET="unshare -rn"
else echo "bundle-check: cannot block the network here (unshare -n is not permitted)" >&2; exit 2
fi
TRACE=""
if command -v strace >/dev/null 2>&1; then TRACE="strace -f -qq -e trace=socket,connect -o $WORK/trace"; fi

# Each command runs twice: timed, then under strace (which slows it down) for the socket audit.
run() {
    start=$(date +%s.%N)
    env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen $NET "$@"
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v c="$*" 'BEGIN { printf "  %.2f s: %s\n", e - s, c }' | sed "s|$WORK|\$TMP|g"
    [ -z "$TRACE" ] && return
    env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen $NET $TRACE "$@" >/dev/null
    if grep -h -E 'AF_INET|AF_INET6' "$WORK"/trace* >/dev/null 2>&1; then
        echo "bundle-check: an Internet socket was opened:" >&2
        grep -h -E 'AF_INET|AF_INET6' "$WORK"/trace* >&2
        exit 1
    fi
    rm -f "$WORK"/trace*
}

echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)); network: $NET; socket audit: ${TRACE:+strace}"
run "$EXE" predict --teacher --format jsonl -o "$WORK/records.jsonl"
ok=$(grep -c '"error": null' "$WORK/records.jsonl" || true)
[ "$ok" = 2 ] || { echo "bundle-check: expected 2 scored records, got:" >&2; cat "$WORK/records.jsonl" >&2; exit 1; }
grep -q '"trained": true' "$WORK/records.jsonl" || { echo "bundle-check: models not trained" >&2; exit 1; }
run "$EXE" screenshot "$WORK/shot.png" --scale 0.5
[ "$(head -c 4 "$WORK/shot.png" | od -An -c | tr -d ' ')" = "211PNG" ] || { echo "bundle-check: no PNG" >&2; exit 1; }
run "$EXE" info
# Every DICOM codec (pydicom and pylibjpeg find them through the bundled package metadata), where
# the shared test corpus is present: one file per transfer syntax, each must be scored.
CORPUS="${KDVIEWER_SHARED:-$(dirname "$0")/../../shared}/data/dicom/non_cr_transfer_syntaxes"
if [ -d "$CORPUS" ]; then
    run "$EXE" predict --format jsonl -o "$WORK/codecs.jsonl" "$CORPUS"
    want=$(find "$CORPUS" -name '*.dcm' | wc -l)
    got=$(grep -c '"error": null' "$WORK/codecs.jsonl" || true)
    [ "$got" = "$want" ] || { echo "bundle-check: $got of $want codec files scored" >&2; exit 1; }
fi
if find "$WORK/home" -name '*.onnx' | grep -q . || [ -e "$WORK/home/.cache/Microsoft" ]; then
    echo "bundle-check: files were written under HOME:" >&2; find "$WORK/home" >&2; exit 1
fi
echo "bundle-check: predict (student + teacher), screenshot, info${want:+ and $want transfer syntaxes} passed offline"
