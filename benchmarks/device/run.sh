#!/usr/bin/env bash
# On the GPU machine (device tool), one prepared session: the speed figures, then online Pong.
#   bash benchmarks/device/run.sh TRAIN_SECONDS [extra visual-iq fit options...]
# Writes to $OUT (the device tool's return folder; results/device here for a dry run):
# card.txt, throughput.log/.json (benchmarks/throughput.py on the GPU, batch 64), fit.log, the
# TensorBoard events of the online run (OUT/pong_online/0/) and its last checkpoint exported
# (pong_online_agent.ckpt).
# DEVICE=cpu and a few seconds make a dry run on the CPU machine.
set -u
TRAIN_SECONDS=${1:-300}
shift || true
OUT=${OUT:-results/device}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
  ACCELERATOR=gpu
else
  grep -m1 "model name" /proc/cpuinfo | tee "$OUT/card.txt"
  ACCELERATOR=cpu
fi
$PYTHON benchmarks/throughput.py --device "$DEVICE" --batch-size 64 --updates "${UPDATES:-300}" --precisions 32 \
  --threads "${THREADS:-4}" --json "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1
grep "^|" "$OUT/throughput.log"
timeout --signal=INT "$TRAIN_SECONDS" $PYTHON -m visual_iq fit --config conf/pong_online.yaml --threads "${THREADS:-4}" \
  --trainer.accelerator "$ACCELERATOR" --trainer.enable_progress_bar false --model.eval_video false \
  --trainer.logger.init_args.save_dir "$OUT" --trainer.logger.init_args.version 0 "$@" > "$OUT/fit.log" 2>&1
tail -n 5 "$OUT/fit.log"
mv "$OUT"/pong_online/version_0 "$OUT"/pong_online/0 2>/dev/null
# The full checkpoint holds the 50k-frame replay (~350 MB, over the device tool's 16 MB per file):
# bring back the exported agent (network, hparams, env settings) instead.
$PYTHON tools/export.py "$OUT"/pong_online/0/checkpoints/last.ckpt "$OUT/pong_online_agent.ckpt"
rm -rf "$OUT"/pong_online/0/checkpoints
ls -la "$OUT" "$OUT"/pong_online/0
