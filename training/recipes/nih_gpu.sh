#!/usr/bin/env bash
# Train the bundled models on one GPU: the teacher, plain student and distilled student of several
# recipe variants, the variants in parallel (one process per training; a batch of 32 at 224 px
# leaves an H100 mostly idle, so they share it), then evaluate every variant on val and pick the
# one whose distilled student has the best val mean AUC.
#
#   training/recipes/nih_gpu.sh DATA_ROOT WORK_DIR [PACK_DIR]
#
# DATA_ROOT: the NIH folder (labels.csv + images/). WORK_DIR: one work folder per variant
# (WORK_DIR/<variant>/{teacher,student_plain,student,evaluation}) and the shared image cache.
# PACK_DIR (optional): the chosen variant's three best.pt plus every variant's logs and metrics as a
# tar split into 15 MiB parts (reassemble: cat PACK_DIR/pack.tar.part-* | tar x).
# Environment: PYTHON (python3), EPOCHS (60), VARIANTS (all below), EXTRA_ARGS (more options for
# every stage), STUDENT_EXTRA_ARGS (more for the plain and distilled students only), STAGE_LIMIT
# (seconds; a safety net per training: a run stopped by it keeps its best.pt but has no result.json).
# Then, on any machine: kdviewer-train export --workdir WORK_DIR/<chosen> ... (docs/MODELS.md).
set -u
DATA=${1:?usage: nih_gpu.sh DATA_ROOT WORK_DIR [PACK_DIR]}
WORK=${2:?usage: nih_gpu.sh DATA_ROOT WORK_DIR [PACK_DIR]}
PACK=${3:-}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-60}
STAGE_LIMIT=${STAGE_LIMIT:-100000}
VARIANTS=${VARIANTS:-"paper aug aug_lr aug_lr_wd"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
mkdir -p "$WORK"

COMMON=(--config training/configs/nih.toml --data-root "$DATA" --no-progress
        --set "data.cache_dir=$WORK/cache" --set data.num_workers=8 --set "train.epochs=$EPOCHS"
        --set train.plateau_patience=3 --set train.early_stopping_patience=10)
read -r -a EXTRA <<<"${EXTRA_ARGS:-}"  # more kdviewer-train options for every stage
read -r -a STUDENT_EXTRA <<<"${STUDENT_EXTRA_ARGS:-}"  # and for the two student trainings only
AUG=(--set train.scale=0.1 --set train.translate=0.05 --set train.brightness=0.1 --set train.contrast=0.2)

variant_args() {
  case $1 in
    paper) ;;                                          # the paper's recipe (flip, ±10°, lr 1e-4 / 1e-3)
    aug) echo "${AUG[@]}" ;;                           # + zoom ±10 %, shift ±5 %, brightness ±0.1, contrast ±20 %
    aug_lr) echo "${AUG[@]}" --set teacher.lr=3e-4 ;;  # + teacher lr 3e-4 (it starts from random weights)
    aug_lr_wd) echo "${AUG[@]}" --set teacher.lr=3e-4 --set train.weight_decay=0.05 ;;  # + weight decay 0.05
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}

stage() {  # stage VARIANT STAGE: one training (or evaluate), logged to WORK/VARIANT-STAGE.log
  local v=$1 s=$2 more=()
  case $s in student|distill) more=("${STUDENT_EXTRA[@]}") ;; esac
  # shellcheck disable=SC2046
  timeout -s INT "$STAGE_LIMIT" "$PY" -m training "$s" "${COMMON[@]}" "${EXTRA[@]}" "${more[@]}" $(variant_args "$v") \
    --workdir "$WORK/$v" >"$WORK/$v-$s.log" 2>&1
  echo "$(date +%T) $v $s exit $?"
}

energy_mj() {  # the GPU's energy counter (mJ since driver load), or nothing
  "$PY" -c 'import pynvml as n; n.nvmlInit(); print(n.nvmlDeviceGetTotalEnergyConsumption(n.nvmlDeviceGetHandleByIndex(0)))' 2>/dev/null
}

t0=$(date +%s); e0=$(energy_mj)
echo "$(date +%T) decoding images once into the shared cache"
"$PY" -m training prepare "${COMMON[@]}" "${EXTRA[@]}" --workdir "$WORK/prepare" >"$WORK/prepare.log" 2>&1 || {
  cat "$WORK/prepare.log"; exit 1; }
for v in $VARIANTS; do stage "$v" teacher & done; wait
for v in $VARIANTS; do stage "$v" student & stage "$v" distill & done; wait
for v in $VARIANTS; do stage "$v" evaluate & done; wait
t1=$(date +%s); e1=$(energy_mj)
echo "all trainings: $((t1 - t0)) s wall clock; GPU energy counter: ${e0:-?} -> ${e1:-?} mJ"

"$PY" - "$WORK" $VARIANTS <<'PY' | tee "$WORK/variants.txt"
import json, sys
from pathlib import Path
work, variants = Path(sys.argv[1]), sys.argv[2:]
best = None
print("variant | teacher | plain student | distilled student | distilled - plain [CI] | teacher - distilled [CI]")
for v in variants:
    f = work / v / "evaluation" / "metrics.json"
    if not f.is_file():
        print(f"{v} | no evaluation"); continue
    m = json.loads(f.read_text())
    auc = {k: m["models"].get(k, {}).get("mean_auc", float("nan")) for k in ("teacher", "student_plain", "student")}
    c = m["comparisons"]
    def diff(key):
        d = c.get(key)
        return f"{d['difference']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" if d else "-"
    print(f"{v} | {auc['teacher']:.4f} | {auc['student_plain']:.4f} | {auc['student']:.4f} | "
          f"{diff('student_vs_student_plain')} | {diff('teacher_vs_student')}")
    if auc["student"] == auc["student"] and (best is None or auc["student"] > best[1]):
        best = (v, auc["student"])
print(f"chosen: {best[0] if best else 'none'}")
PY

chosen=$(sed -n 's/^chosen: //p' "$WORK/variants.txt")
if [ -n "$PACK" ] && [ "$chosen" != "none" ]; then
  mkdir -p "$PACK"
  (cd "$WORK" && find . -path ./cache -prune -o -type f \
      \( -name '*.log' -o -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.png' -o -name '*.npz' \
         -o -name variants.txt -o -name splits.csv -o -path "./$chosen/*/best.pt" \) -print \
    | tar cf - -T -) | split -b 15M - "$PACK/pack.tar.part-"
  ls -l "$PACK"
fi
