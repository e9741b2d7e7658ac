#!/usr/bin/env bash
# Train BOTH bundled models on a borrowed GPU machine in one call (issue 12, section 4).
#
#   tools/gpu_train.sh [OUT_DIR]            GPU: --accelerator gpu --precision bf16-mixed
#   tools/gpu_train.sh --cpu-test [OUT_DIR] the same script end to end, 2 steps each, CPU
#   STEPS=2 tools/gpu_train.sh ...          (STEPS=N sets both step counts)
#
# Prepares nothing: it trains from the packed files of `make gpu-pack` (PACK=build/gpu:
# rts.npz, cobra.npz), which need numpy only (no GDAL, no PIL, no QGIS). The two trainings
# run at the same time on the one GPU (both are small networks, bound by kernel launches
# and the CPU, not by the GPU's arithmetic). Nobody has measured their GPU speed yet, so
# (CALIBRATE=1, the GPU default) both first run for CALIBRATE_S seconds; their steps/s then
# size the real runs to 85 % of the training time left (BUDGET_S for the whole command
# minus RESERVE_S for start-up, evaluation and export), and a time guard (TRAIN_MAX_S,
# Lightning's max_time via PL_TRAINER_MAX_TIME) plus `timeout` make sure both export their
# ONNX model inside a 10-minute command; the summary says whether the guard cut a run short.
#
# Output (OUT_DIR, default $OUT, else build/gpu_out):
#   models/rts_pixeldino_s2_bgrn.onnx, models/calving_front_cobra.onnx  (with metadata)
#   logs/rts.log, logs/cobra.log        JSON progress lines + stderr of each training
#   logs/*.calibrate.log                the speed measurement
#   runs/<rts|cobra>.metrics.csv        Lightning CSV logs (COBRA: + held-out curve)
#   cobra_heldout_metrics.json, summary.json (steps, steps/s, held-out numbers), env.txt
#
# The recipes are those of `make models`: RTS = arctic_assist.training.bundled's training
# arguments (pixeldino, width 16, tile 64, batch 8 + 8, seed 0) on the data its prepare()
# builds; COBRA = mk/cobra.mk's COBRA_* values (read from that file), except the batch on
# the GPU (32, see below). Only the steps, the batch of COBRA and the accelerator differ.
# Override with STEPS, RTS_STEPS, COBRA_STEPS, RTS_BATCH, COBRA_BATCH, CALIBRATE,
# CALIBRATE_S, BUDGET_S, RESERVE_S, TRAIN_MAX_S, PRECISION, ACCELERATOR, WORKERS, THREADS,
# PYTHON, PACK.
set -uo pipefail
cd "$(dirname "$0")/.."

CPU_TEST=0
if [ "${1:-}" = "--cpu-test" ]; then CPU_TEST=1; shift; fi
OUT_DIR=${1:-${OUT:-build/gpu_out}}
PACK=${PACK:-build/gpu}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# mk/cobra.mk's value of VAR (the bundled model's recipe), or DEFAULT
mkvar() { local v; v=$(sed -n "s/^$1 ?= *//p" mk/cobra.mk 2>/dev/null | head -1); echo "${v:-$2}"; }

T_START=$(date +%s)
if [ "$CPU_TEST" = 1 ]; then
  STEPS=${STEPS:-2}
  ACCELERATOR=${ACCELERATOR:-cpu}
  PRECISION=${PRECISION:-32}
  WORKERS=${WORKERS:-0}
  THREADS=${THREADS:-1}
  CALIBRATE=${CALIBRATE:-0}
  COBRA_BATCH=${COBRA_BATCH:-$(mkvar COBRA_BATCH 8)}
else
  ACCELERATOR=${ACCELERATOR:-gpu}
  PRECISION=${PRECISION:-bf16-mixed}
  WORKERS=${WORKERS:-4}
  THREADS=${THREADS:-4}
  CALIBRATE=${CALIBRATE:-1}
  # a COBRA step costs ~45k small tensor operations whatever the batch (soft-DTW's 127
  # anti-diagonals x 4 iterations; counted with the profiler on the CPU): on a GPU it is
  # bound by kernel launches, so a larger batch is nearly free there; the CPU recipe's 8
  # would see fewer images in the time than `make models` did (COBRA_BATCH=8 keeps it)
  COBRA_BATCH=${COBRA_BATCH:-32}
fi
# the whole command must end within BUDGET_S (the borrowed machine stops it at 600 s)
BUDGET_S=${BUDGET_S:-570}
CALIBRATE_S=${CALIBRATE_S:-50}     # wall time of the speed measurement (both runs at once)
RESERVE_S=${RESERVE_S:-90}         # start-up, held-out evaluation and ONNX export after it
RTS_BATCH=${RTS_BATCH:-8}
COBRA_HOLDOUT=${COBRA_HOLDOUT:-$(mkvar COBRA_HOLDOUT 023006)}
COBRA_SYNTHETIC=${COBRA_SYNTHETIC:-$(mkvar COBRA_SYNTHETIC 0.3)}
COBRA_SIZE=${COBRA_SIZE:-$(mkvar COBRA_SIZE 128)}
COBRA_VERTEX_WEIGHT=${COBRA_VERTEX_WEIGHT:-$(mkvar COBRA_VERTEX_WEIGHT 1.0)}
COBRA_SPACING_WEIGHT=${COBRA_SPACING_WEIGHT:-$(mkvar COBRA_SPACING_WEIGHT 0)}
every() { local n=$(( $1 / $2 )); [ "$n" -ge 1 ] && echo "$n" || echo 0; }

for f in "$PACK/rts.npz" "$PACK/cobra.npz"; do
  [ -f "$f" ] || { echo "missing $f: run 'make gpu-pack' first (and carry $PACK)" >&2; exit 2; }
done
mkdir -p "$OUT_DIR/models" "$OUT_DIR/logs" "$OUT_DIR/runs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_train.XXXXXX")   # checkpoints stay out of OUT_DIR
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "mode: $([ "$CPU_TEST" = 1 ] && echo cpu-test || echo gpu) accelerator=$ACCELERATOR precision=$PRECISION"
  echo "workers=$WORKERS threads=$THREADS batch: rts=$RTS_BATCH+$RTS_BATCH cobra=$COBRA_BATCH calibrate=$CALIBRATE"
  "$PYTHON" -c "import sys, torch, lightning; print('python', sys.version.split()[0], '| torch', torch.__version__, '| lightning', lightning.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  ls -l "$PACK"
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

# the two trainings: rts_cmd/cobra_cmd STEPS RUN_DIR_NAME MODEL [extra args] set CMD
rts_cmd() {
  local steps=$1 name=$2 model=$3; shift 3
  CMD=("$PYTHON" -m arctic_assist.training pixeldino --data "$PACK/rts.npz" \
    --out "$model" --name rts_pixeldino_s2_bgrn \
    --steps "$steps" --width 16 --tile 64 \
    --batch-labelled "$RTS_BATCH" --batch-unlabelled "$RTS_BATCH" --seed 0 \
    --log-dir "$WORK/runs" --run-name "$name" --checkpoint-every "$(every "$steps" 4)" \
    --accelerator "$ACCELERATOR" --precision "$PRECISION" \
    --num-workers "$WORKERS" --threads "$THREADS" --progress json "$@")
}
cobra_cmd() {
  local steps=$1 name=$2 model=$3; shift 3
  CMD=("$PYTHON" -m arctic_assist.training cobra --frontlearning "$PACK/cobra.npz" \
    --holdout "$COBRA_HOLDOUT" --synthetic "$COBRA_SYNTHETIC" --steps "$steps" \
    --batch-size "$COBRA_BATCH" --size "$COBRA_SIZE" --vertex-weight "$COBRA_VERTEX_WEIGHT" \
    --spacing-weight "$COBRA_SPACING_WEIGHT" \
    --log-dir "$WORK/runs" --run-name "$name" --checkpoint-every "$(every "$steps" 4)" \
    --out "$model" --accelerator "$ACCELERATOR" --precision "$PRECISION" \
    --num-workers "$WORKERS" --threads "$THREADS" --progress json "$@")
}
# steps/s from a log's JSON progress lines, leaving out the first third (start-up, warm-up)
rate_from_log() {
  "$PYTHON" - "$1" <<'PYEOF'
import json, sys
pts = []
for line in open(sys.argv[1], errors="replace"):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if isinstance(ev, dict) and ev.get("event") == "progress" and ev.get("elapsed_s"):
        pts.append((ev["elapsed_s"], ev["step"]))
if len(pts) >= 3:
    (e1, s1), (e2, s2) = pts[len(pts) // 3], pts[-1]
    print(round((s2 - s1) / (e2 - e1), 3) if e2 > e1 and s2 > s1 else 0)
else:
    print(0)
PYEOF
}
# STEPS sizes both runs; else RTS_STEPS / COBRA_STEPS; else (CALIBRATE=1) measured speed
# x the training time left; else these fallbacks (the guard below still holds)
RTS_STEPS=${STEPS:-${RTS_STEPS:-}}
COBRA_STEPS=${STEPS:-${COBRA_STEPS:-}}
RTS_RATE=0; COBRA_RATE=0
if [ "$CALIBRATE" = 1 ] && { [ -z "$RTS_STEPS" ] || [ -z "$COBRA_STEPS" ]; }; then
  echo "calibrating: both trainings for ${CALIBRATE_S}s ..."
  rts_cmd 1000 rts_calibrate "$WORK/rts_calibrate.onnx"
  "${CMD[@]}" > "$OUT_DIR/logs/rts.calibrate.log" 2>&1 &
  P1=$!
  cobra_cmd 1000 cobra_calibrate "$WORK/cobra_calibrate.onnx"
  "${CMD[@]}" > "$OUT_DIR/logs/cobra.calibrate.log" 2>&1 &
  P2=$!
  for _ in $(seq "$CALIBRATE_S"); do
    kill -0 "$P1" 2> /dev/null || kill -0 "$P2" 2> /dev/null || break
    sleep 1
  done
  kill -TERM "$P1" "$P2" 2> /dev/null; sleep 3; kill -KILL "$P1" "$P2" 2> /dev/null
  wait "$P1" 2> /dev/null; wait "$P2" 2> /dev/null
  RTS_RATE=$(rate_from_log "$OUT_DIR/logs/rts.calibrate.log")
  COBRA_RATE=$(rate_from_log "$OUT_DIR/logs/cobra.calibrate.log")
  echo "measured: rts $RTS_RATE steps/s, cobra $COBRA_RATE steps/s (both running)"
fi
LEFT=$(( BUDGET_S - ($(date +%s) - T_START) ))
TRAIN_MAX_S=${TRAIN_MAX_S:-$(( LEFT - RESERVE_S ))}
[ "$TRAIN_MAX_S" -ge 30 ] || TRAIN_MAX_S=30
# steps = speed x 85 % of the training time, within [LO, HI]; FALLBACK without a speed
size_steps() {
  "$PYTHON" -c "import sys; r, t, lo, hi, fb = map(float, sys.argv[1:6]); print(int(min(hi, max(lo, r * t * 0.85))) if r > 0 else int(fb))" "$@"
}
[ -n "$RTS_STEPS" ] || RTS_STEPS=$(size_steps "$RTS_RATE" "$TRAIN_MAX_S" 1500 40000 6000)
[ -n "$COBRA_STEPS" ] || COBRA_STEPS=$(size_steps "$COBRA_RATE" "$TRAIN_MAX_S" 500 20000 1500)
# Lightning reads Trainer defaults from PL_TRAINER_*: the training-time guard
export PL_TRAINER_MAX_TIME
PL_TRAINER_MAX_TIME=$(printf '00:00:%02d:%02d' $((TRAIN_MAX_S / 60)) $((TRAIN_MAX_S % 60)))
HARD=()
if [ "$CPU_TEST" = 0 ] && command -v timeout > /dev/null; then
  HARD=(timeout $(( LEFT - 10 > 60 ? LEFT - 10 : 60 )))
fi
echo "steps: rts=$RTS_STEPS cobra=$COBRA_STEPS; training guard ${TRAIN_MAX_S}s; ${LEFT}s left" \
  | tee -a "$OUT_DIR/env.txt"

# run NAME CMD...: CMD in the background, its log in logs/NAME.log, its wall time in
# logs/NAME.wall_s, its exit status in logs/NAME.rc
run() {
  local name=$1; shift
  ( t=$(date +%s); "$@" > "$OUT_DIR/logs/$name.log" 2>&1; rc=$?
    echo $(( $(date +%s) - t )) > "$OUT_DIR/logs/$name.wall_s"; echo "$rc" > "$OUT_DIR/logs/$name.rc"
    exit "$rc" ) &
}
T0=$(date +%s)
rts_cmd "$RTS_STEPS" rts "$OUT_DIR/models/rts_pixeldino_s2_bgrn.onnx"
run rts ${HARD[@]+"${HARD[@]}"} "${CMD[@]}"
RTS_PID=$!
cobra_cmd "$COBRA_STEPS" cobra "$OUT_DIR/models/calving_front_cobra.onnx" \
  --eval-every "$(every "$COBRA_STEPS" 6)" --metrics-json "$OUT_DIR/cobra_heldout_metrics.json"
run cobra ${HARD[@]+"${HARD[@]}"} "${CMD[@]}"
COBRA_PID=$!
wait "$RTS_PID"; RTS_RC=$?
wait "$COBRA_PID"; COBRA_RC=$?
WALL=$(( $(date +%s) - T0 ))

for r in rts cobra; do
  [ -f "$WORK/runs/$r/logs/metrics.csv" ] && cp "$WORK/runs/$r/logs/metrics.csv" "$OUT_DIR/runs/$r.metrics.csv"
  [ -f "$WORK/runs/$r/heldout_curve.jsonl" ] && cp "$WORK/runs/$r/heldout_curve.jsonl" "$OUT_DIR/runs/$r.heldout_curve.jsonl"
done

"$PYTHON" - "$OUT_DIR" "$RTS_RC" "$COBRA_RC" "$WALL" "$RTS_STEPS" "$COBRA_STEPS" "$RTS_RATE" "$COBRA_RATE" "$TRAIN_MAX_S" <<'EOF'
import json, sys
from pathlib import Path

out, rts_rc, cobra_rc, wall, rts_steps, cobra_steps, rts_rate, cobra_rate, guard = sys.argv[1:10]
out = Path(out)
summary = {"wall_s": int(wall), "training_guard_s": int(guard), "runs": {}}
calibrated = {"rts": float(rts_rate), "cobra": float(cobra_rate)}
models = {"rts": "rts_pixeldino_s2_bgrn.onnx", "cobra": "calving_front_cobra.onnx"}
asked = {"rts": int(rts_steps), "cobra": int(cobra_steps)}
for run, rc in (("rts", rts_rc), ("cobra", cobra_rc)):
    info = {"rc": int(rc), "steps_asked": asked[run],
            "calibration_steps_per_s": calibrated[run] or None}
    last = None
    for line in (out / "logs" / f"{run}.log").read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "progress":
            last = ev
        if isinstance(ev, dict) and ev.get("timing"):
            info["timing"] = ev["timing"]
    wall_file = out / "logs" / f"{run}.wall_s"
    if wall_file.is_file():
        info["process_wall_s"] = int(wall_file.read_text().strip() or 0)
    timing = info.get("timing") or {}
    if timing.get("steps") and timing.get("train_s"):  # pixeldino: exact, training loop only
        info["steps_done"] = timing["steps"]
        info["steps_per_s"] = round(timing["steps"] / timing["train_s"], 3)
        info["steps_per_s_from"] = "training loop (timing)"
    elif last and last.get("elapsed_s"):
        info["steps_done"] = last["step"]
        info["steps_per_s"] = round(last["step"] / max(last["elapsed_s"], 1e-9), 3)
        info["steps_per_s_from"] = "last progress line"
    else:  # no progress line yet: the CSV log's last step over the process's wall time
        csv = out / "runs" / f"{run}.metrics.csv"
        rows = csv.read_text().splitlines() if csv.is_file() else []
        steps = []
        if rows:
            col = rows[0].split(",").index("step") if "step" in rows[0].split(",") else None
            steps = [int(r.split(",")[col]) for r in rows[1:] if col is not None
                     and len(r.split(",")) > col and r.split(",")[col].isdigit()]
        if steps:
            info["steps_done_at_least"] = max(steps)
            info["steps_per_s"] = round(max(steps) / max(info.get("process_wall_s", 0), 1), 3)
            info["steps_per_s_from"] = "CSV log over process wall time (lower bound)"
    path = out / "models" / models[run]
    if path.is_file():
        from arctic_assist.core.onnx_model import read_model_spec

        spec = read_model_spec(str(path))
        prov = spec.provenance
        info.update(model=str(path), bytes=path.stat().st_size,
                    steps_exported=prov.get("steps"), metrics=prov.get("metrics"))
    done = info.get("steps_done", info.get("steps_done_at_least"))
    if done is not None:
        info["cut_by_time_guard"] = done < asked[run]
    summary["runs"][run] = info
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
for run, info in summary["runs"].items():
    done = info.get("steps_done", info.get("steps_done_at_least"))
    print(f"{run}: rc={info['rc']} steps {done}/{info['steps_asked']} "
          f"at {info.get('steps_per_s')} steps/s -> {info.get('model', 'NO MODEL')}")
print(f"wall {wall} s; summary: {out / 'summary.json'}")
EOF

if [ "$RTS_RC" != 0 ] || [ "$COBRA_RC" != 0 ]; then
  echo "a training failed (rts rc=$RTS_RC, cobra rc=$COBRA_RC); see $OUT_DIR/logs" >&2
  tail -n 20 "$OUT_DIR/logs/rts.log" "$OUT_DIR/logs/cobra.log" >&2
  exit 1
fi
