#!/usr/bin/env bash
# On the GPU machine (device tool), one prepared session, run from the repository root:
#   bash benchmarks/device/run.sh TOTAL_SECONDS
# (device run with carry [".whl"]; `bash benchmarks/device/prepare.sh` fills .whl/ here first).
#  1. benchmarks/device/check_capture.py: CUDA-graph update == eager update, and ms of each;
#  2. benchmarks/throughput.py --device cuda, batch 64, with and without CUDA graphs;
#  3. online Pong arms side by side (ARMS, default 3 IQ seeds + SQIL seed 0), trained for what is left
#     of TOTAL_SECONDS after 1-2 less a reserve for set-up, the final evaluation and packing:
#     conf/pong_online.yaml (8 envs stepping once every 8 updates: 1 update per env step, as the
#     official recipe; 50k replay in all), evaluation every VAL_EVERY updates, THREADS CPU threads
#     each; TensorBoard runs laid out as benchmarks/learning.py reads them (runs/<arm>/version_0):
#     summarise them here with benchmarks/learning.py --only online --no-train --runs <that folder>.
# Writes to $OUT (results/device for a dry run): card.txt, capture.log/.json, throughput.log/.json,
# and runs.tgz (each arm's events, fit log, and its best checkpoint exported as a small agent).
# Dry run on a CPU: DEVICE=cpu VAL_EVERY=150 THREADS=1 CHECK="--device cpu --updates 2 --timed 2" \
#   UPDATES=5 PYTHON=.venv/bin/python ARMS="iq:0 sqil:0" RESERVE=40 bash benchmarks/device/run.sh 150
set -u
STARTED=$SECONDS
TOTAL_SECONDS=${1:-540}
OUT=${OUT:-results/device}
DEVICE=${DEVICE:-cuda}
THREADS=${THREADS:-4}
VAL_EVERY=${VAL_EVERY:-20000}
ARMS=${ARMS:-"iq:0 iq:1 iq:2 sqil:0"}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -d .whl ] && [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
  ACCELERATOR=gpu
else
  grep -m1 "model name" /proc/cpuinfo | tee "$OUT/card.txt"
  ACCELERATOR=cpu
fi

timeout 90 $PYTHON benchmarks/device/check_capture.py ${CHECK:-} --json "$OUT/capture.json" > "$OUT/capture.log" 2>&1
grep -E "^\||graphs" "$OUT/capture.log"
CAPTURE="false true"
[ "$DEVICE" = cuda ] || CAPTURE=false
timeout 120 $PYTHON benchmarks/throughput.py --device "$DEVICE" --batch-size 64 --updates "${UPDATES:-200}" \
  --precisions 32 --capture $CAPTURE --no-acting --threads "$THREADS" --json "$OUT/throughput.json" \
  > "$OUT/throughput.log" 2>&1
grep "^|" "$OUT/throughput.log"

TRAIN_SECONDS=$((TOTAL_SECONDS - (SECONDS - STARTED) - ${RESERVE:-100}))
MAX_TIME=$(printf "00:00:%02d:%02d" $((TRAIN_SECONDS / 60)) $((TRAIN_SECONDS % 60)))
echo "training each arm for $MAX_TIME"
rm -rf runs_device && mkdir -p runs_device
for arm in $ARMS; do
  method=${arm%%:*}; seed=${arm##*:}; name=online-$method-20demos-seed$seed
  timeout $((TRAIN_SECONDS + 70)) $PYTHON -m visual_iq fit --config conf/pong_online.yaml --threads "$THREADS" \
    --seed_everything "$seed" --model.seed "$seed" --model.method "$method" \
    --trainer.max_time "$MAX_TIME" --trainer.val_check_interval "$VAL_EVERY" \
    --trainer.accelerator "$ACCELERATOR" --trainer.enable_progress_bar false --model.eval_video false \
    --trainer.logger.init_args.save_dir runs_device --trainer.logger.init_args.name "$name" \
    --trainer.logger.init_args.version 0 > "runs_device/$name.log" 2>&1 &
done
wait
for log in runs_device/*.log; do echo "== $log"; grep -E "Error|error|could not record|Time limit" "$log" | tail -n 3; done
# A full checkpoint holds the replay (~350 MB): bring back each arm's best one exported (network,
# hparams, env settings) and drop the rest.
for run in runs_device/*/version_0; do
  best=$(ls "$run"/checkpoints/best-*.ckpt 2>/dev/null | head -n 1)
  [ -n "$best" ] && $PYTHON tools/export.py "$best" "$run/best_agent.ckpt" && basename "$best" > "$run/best_name.txt"
  rm -rf "$run/checkpoints"
done
tar czf "$OUT/runs.tgz" runs_device
ls -la "$OUT"
