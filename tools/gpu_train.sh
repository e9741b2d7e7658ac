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
# and the CPU, not by the GPU's arithmetic), each with a time guard (TRAIN_MAX_S seconds of
# training, Lightning's max_time) so that both export their ONNX model well inside a
# 10-minute command even if the GPU is slower than planned; the summary says whether a
# guard cut a run short.
#
# Output (OUT_DIR, default $OUT, else build/gpu_out):
#   models/rts_pixeldino_s2_bgrn.onnx, models/calving_front_cobra.onnx  (with metadata)
#   logs/rts.log, logs/cobra.log        JSON progress lines + stderr of each training
#   runs/<rts|cobra>/metrics.csv        Lightning CSV logs
#   cobra_heldout_metrics.json, summary.json (steps, steps/s, held-out numbers), env.txt
#
# The recipes are those of `make models`: RTS = arctic_assist.training.bundled's training
# arguments (pixeldino, width 16, tile 64, batch 8 + 8, seed 0) on the data its prepare()
# builds; COBRA = mk/cobra.mk's COBRA_* values (read from that file). Only the steps (and
# the accelerator) differ. Override with RTS_STEPS, COBRA_STEPS, RTS_BATCH, COBRA_BATCH,
# TRAIN_MAX_S, PRECISION, ACCELERATOR, PYTHON, PACK.
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

if [ "$CPU_TEST" = 1 ]; then
  STEPS=${STEPS:-2}
  ACCELERATOR=${ACCELERATOR:-cpu}
  PRECISION=${PRECISION:-32}
  WORKERS=${WORKERS:-0}
  THREADS=${THREADS:-1}
else
  ACCELERATOR=${ACCELERATOR:-gpu}
  PRECISION=${PRECISION:-bf16-mixed}
  WORKERS=${WORKERS:-4}
  THREADS=${THREADS:-4}
fi
# GPU budget (not yet measured on a GPU): CPU speeds were 0.64 (RTS) and 1.1 (COBRA)
# steps/s on one core; the time guard ends a run early if these are too many
RTS_STEPS=${STEPS:-${RTS_STEPS:-8000}}
COBRA_STEPS=${STEPS:-${COBRA_STEPS:-3000}}
TRAIN_MAX_S=${TRAIN_MAX_S:-420}
RTS_BATCH=${RTS_BATCH:-8}
COBRA_BATCH=${COBRA_BATCH:-$(mkvar COBRA_BATCH 8)}
COBRA_HOLDOUT=${COBRA_HOLDOUT:-$(mkvar COBRA_HOLDOUT 023006)}
COBRA_SYNTHETIC=${COBRA_SYNTHETIC:-$(mkvar COBRA_SYNTHETIC 0.3)}
COBRA_SIZE=${COBRA_SIZE:-$(mkvar COBRA_SIZE 128)}
COBRA_VERTEX_WEIGHT=${COBRA_VERTEX_WEIGHT:-$(mkvar COBRA_VERTEX_WEIGHT 1.0)}
every() { local n=$(( $1 / $2 )); [ "$n" -ge 1 ] && echo "$n" || echo 0; }

for f in "$PACK/rts.npz" "$PACK/cobra.npz"; do
  [ -f "$f" ] || { echo "missing $f: run 'make gpu-pack' first (and carry $PACK)" >&2; exit 2; }
done
mkdir -p "$OUT_DIR/models" "$OUT_DIR/logs" "$OUT_DIR/runs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_train.XXXXXX")   # checkpoints stay out of OUT_DIR
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1
# Lightning reads Trainer defaults from PL_TRAINER_*: the training-time guard
export PL_TRAINER_MAX_TIME
PL_TRAINER_MAX_TIME=$(printf '00:00:%02d:%02d' $((TRAIN_MAX_S / 60)) $((TRAIN_MAX_S % 60)))
HARD=""
if [ "$CPU_TEST" = 0 ] && command -v timeout > /dev/null; then HARD="timeout ${HARD_LIMIT_S:-570}"; fi

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "mode: $([ "$CPU_TEST" = 1 ] && echo cpu-test || echo gpu) accelerator=$ACCELERATOR precision=$PRECISION"
  echo "steps: rts=$RTS_STEPS cobra=$COBRA_STEPS guard=${TRAIN_MAX_S}s workers=$WORKERS threads=$THREADS"
  "$PYTHON" -c "import sys, torch, lightning; print('python', sys.version.split()[0], '| torch', torch.__version__, '| lightning', lightning.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  ls -l "$PACK"
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

# run NAME CMD...: CMD in the background, its log in logs/NAME.log, its wall time in
# logs/NAME.wall_s, its exit status in logs/NAME.rc
run() {
  local name=$1; shift
  ( t=$(date +%s); "$@" > "$OUT_DIR/logs/$name.log" 2>&1; rc=$?
    echo $(( $(date +%s) - t )) > "$OUT_DIR/logs/$name.wall_s"; echo "$rc" > "$OUT_DIR/logs/$name.rc"
    exit "$rc" ) &
}
T0=$(date +%s)
run rts $HARD "$PYTHON" -m arctic_assist.training pixeldino --data "$PACK/rts.npz" \
  --out "$OUT_DIR/models/rts_pixeldino_s2_bgrn.onnx" --name rts_pixeldino_s2_bgrn \
  --steps "$RTS_STEPS" --width 16 --tile 64 \
  --batch-labelled "$RTS_BATCH" --batch-unlabelled "$RTS_BATCH" --seed 0 \
  --log-dir "$WORK/runs" --run-name rts --checkpoint-every "$(every "$RTS_STEPS" 4)" \
  --accelerator "$ACCELERATOR" --precision "$PRECISION" \
  --num-workers "$WORKERS" --threads "$THREADS" --progress json
RTS_PID=$!
run cobra $HARD "$PYTHON" -m arctic_assist.training cobra --frontlearning "$PACK/cobra.npz" \
  --holdout "$COBRA_HOLDOUT" --synthetic "$COBRA_SYNTHETIC" --steps "$COBRA_STEPS" \
  --batch-size "$COBRA_BATCH" --size "$COBRA_SIZE" --vertex-weight "$COBRA_VERTEX_WEIGHT" \
  --log-dir "$WORK/runs" --run-name cobra \
  --checkpoint-every "$(every "$COBRA_STEPS" 4)" --eval-every "$(every "$COBRA_STEPS" 6)" \
  --metrics-json "$OUT_DIR/cobra_heldout_metrics.json" \
  --out "$OUT_DIR/models/calving_front_cobra.onnx" \
  --accelerator "$ACCELERATOR" --precision "$PRECISION" \
  --num-workers "$WORKERS" --threads "$THREADS" --progress json
COBRA_PID=$!
wait "$RTS_PID"; RTS_RC=$?
wait "$COBRA_PID"; COBRA_RC=$?
WALL=$(( $(date +%s) - T0 ))

for r in rts cobra; do
  [ -f "$WORK/runs/$r/logs/metrics.csv" ] && cp "$WORK/runs/$r/logs/metrics.csv" "$OUT_DIR/runs/$r.metrics.csv"
  [ -f "$WORK/runs/$r/heldout_curve.jsonl" ] && cp "$WORK/runs/$r/heldout_curve.jsonl" "$OUT_DIR/runs/$r.heldout_curve.jsonl"
done

"$PYTHON" - "$OUT_DIR" "$RTS_RC" "$COBRA_RC" "$WALL" "$RTS_STEPS" "$COBRA_STEPS" <<'EOF'
import json, sys
from pathlib import Path

out, rts_rc, cobra_rc, wall, rts_steps, cobra_steps = sys.argv[1:7]
out = Path(out)
summary = {"wall_s": int(wall), "runs": {}}
models = {"rts": "rts_pixeldino_s2_bgrn.onnx", "cobra": "calving_front_cobra.onnx"}
asked = {"rts": int(rts_steps), "cobra": int(cobra_steps)}
for run, rc in (("rts", rts_rc), ("cobra", cobra_rc)):
    info = {"rc": int(rc), "steps_asked": asked[run]}
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
