#!/usr/bin/env bash
# On the GPU machine (device tool), run from the repository root, with carry [".whl"]
# (`bash benchmarks/device/prepare.sh` fills .whl/ here first). Four ways to call it:
#
#   bash benchmarks/device/run.sh TOTAL_SECONDS
#       one call does everything: checks (1-2 below), then the arms for what is left of
#       TOTAL_SECONDS less a reserve, then packs.
#   bash benchmarks/device/run.sh start TRAIN_SECONDS WAIT_SECONDS
#       checks, then the arms started in their own process session (setsid), so they outlive this
#       call and go on while the machine stays warm (it goes back after ~30 s idle: the next call
#       must follow at once); waits WAIT_SECONDS and packs what exists so far.
#       (2026-11-27 the next call came after the ~30 s and found a fresh machine: the arms were lost,
#       only the first call's pack came back; where in doubt, one `TOTAL_SECONDS` call is safer.)
#   bash benchmarks/device/run.sh finish WAIT_SECONDS
#       waits (at most WAIT_SECONDS) for the arms started by `start` to end, then packs.
#   bash benchmarks/device/run.sh checks
#       the checks and timings (1-2 below) only, no training: ~5-7 minutes on an H200 (the online speeds ~3 of them).
#
#  1. benchmarks/device/check_capture.py: CUDA-graph update == eager update, and ms of each;
#     benchmarks/device/check_whole_update.py: the whole update replayed from one graph == the
#     same update eagerly (CHECKS=capture,whole,throughput,online by default; CHECKS=throughput or
#     CHECKS=none to skip; each names one step: "online" is the online speeds of 2.);
#  2. benchmarks/throughput.py --device cuda, batch 64, offline, with CAPTURE (default "false true"),
#     and the whole update in the training step with WHOLE_UPDATE updates per step (default "1 8");
#     then benchmarks/online_speed.py: online IQ-Learn through `visual-iq fit` (conf/pong_online.yaml,
#     20 demos), ONLINE_SECONDS (default 40) of training for each of ONLINE_VARIANTS (default
#     "loop whole8 whole8_nature"): updates/s and env steps/s;
#  3. online Pong arms side by side (ARMS: method:seed or method:seed:key=value,..., the latter with
#     --model.key value, except warm_start=PATH: --warm_start PATH, a checkpoint carried along;
#     default 3 IQ seeds + SQIL seed 0; DEMOS="dir dir ..." and NUM_DEMOS (default the shipped 20
#     Pong demos) choose the demos of every arm, e.g. DEMOS="demos/pong demos/pong_more" NUM_DEMOS=60) with
#     conf/pong_online.yaml (8 envs stepping once every 8 updates: 1 update per env step, as the
#     official recipe; 50k replay in all), each for TRAIN_SECONDS of training (Lightning's max_time;
#     the final evaluation comes after it), evaluated every VAL_EVERY updates, THREADS CPU threads
#     each; TensorBoard runs laid out as benchmarks/learning.py reads them (runs/<arm>/version_0):
#     summarise them here with benchmarks/learning.py --only online --no-train --runs <that folder>.
#     SNAPSHOT_EVERY=N keeps a weights-only snapshot every N updates (--model.evaluation.snapshot_every), and the
#     pack exports the average of each arm's last AVERAGE_LAST (default 4) snapshots as
#     averaged_agent.ckpt (research/results.md, "Averaging weights").
# Writes to $OUT (research/results/device for a dry run): card.txt, capture.log/.json, throughput.log/.json,
# and <arm>.tgz per arm (its events, fit log, its best and last checkpoints exported as small agents,
# and with SNAPSHOT_EVERY the average of its last snapshots; unpack them all into one folder;
# full checkpoints hold the replay, ~350 MB each, and stay on the machine).
# Dry run on a CPU: DEVICE=cpu VAL_EVERY=150 THREADS=1 CHECK="--device cpu --updates 2 --timed 2" \
#   CHECK_WHOLE="--device cpu --updates 5 --batch-size 16" \
#   UPDATES=5 PYTHON=.venv/bin/python ARMS="iq:0 sqil:0" RESERVE=40 bash benchmarks/device/run.sh 150
set -u
STARTED=$SECONDS
MODE=all
if [ "${1:-}" = start ] || [ "${1:-}" = finish ] || [ "${1:-}" = checks ]; then MODE=$1; shift; fi
OUT=${OUT:-results/device}
DEVICE=${DEVICE:-cuda}
THREADS=${THREADS:-4}
VAL_EVERY=${VAL_EVERY:-20000}
ARMS=${ARMS:-"iq:0 iq:1 iq:2 sqil:0"}
DEMOS=${DEMOS:-demos/pong}
NUM_DEMOS=${NUM_DEMOS:-20}
PYTHON=${PYTHON:-python3}
CHECKS=${CHECKS:-capture,whole,throughput,online}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-}
AVERAGE_LAST=${AVERAGE_LAST:-4}
mkdir -p "$OUT"
if [ -d .whl ] && [ "$DEVICE" = cuda ]; then
  [ "$MODE" = finish ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
ACCELERATOR=cpu
[ "$DEVICE" = cuda ] && ACCELERATOR=gpu

run_checks() {
  if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
  else
    grep -m1 "model name" /proc/cpuinfo | tee "$OUT/card.txt"
  fi
  if [[ $CHECKS == *capture* ]]; then
    timeout 90 $PYTHON benchmarks/device/check_capture.py ${CHECK:-} --json "$OUT/capture.json" > "$OUT/capture.log" 2>&1
    grep -E "^\||graphs" "$OUT/capture.log"
  fi
  if [[ $CHECKS == *whole* ]]; then
    timeout 90 $PYTHON benchmarks/device/check_whole_update.py ${CHECK_WHOLE:-} --json "$OUT/whole_update.json" \
      > "$OUT/whole_update.log" 2>&1
    grep -E "^\||whole update" "$OUT/whole_update.log"
  fi
  if [[ $CHECKS == *throughput* ]]; then
    local capture=${CAPTURE:-"false true"}
    [ "$DEVICE" = cuda ] || capture=false
    timeout "${THROUGHPUT_TIMEOUT:-240}" $PYTHON benchmarks/throughput.py --device "$DEVICE" --batch-size 64 --updates "${UPDATES:-200}" \
      --precisions 32 --capture $capture --whole-update ${WHOLE_UPDATE:-1 8} --no-acting --threads "$THREADS" \
      --json "$OUT/throughput.json" \
      > "$OUT/throughput.log" 2>&1
    grep "^|" "$OUT/throughput.log"
  fi
  if [[ $CHECKS == *online* ]]; then
    local variants=${ONLINE_VARIANTS:-"loop whole8 whole8_nature"} seconds=${ONLINE_SECONDS:-40}
    # shellcheck disable=SC2086  # one variant per word
    timeout $(( (seconds + 60) * $(wc -w <<< "$variants") )) $PYTHON benchmarks/online_speed.py --device "$DEVICE" \
      --seconds "$seconds" --threads "$THREADS" --variants $variants --json "$OUT/online_speed.json" \
      > "$OUT/online_speed.log" 2>&1
    grep "^|" "$OUT/online_speed.log"
  fi
}

# The arms, each in the background; runs_device/arms.done appears when all of them have ended.
start_arms() {
  local seconds=$1
  local max_time
  max_time=$(printf "00:00:%02d:%02d" $((seconds / 60)) $((seconds % 60)))
  echo "training each arm for $max_time"
  rm -rf runs_device && mkdir -p runs_device
  local script="pids=();" snapshots=""
  [ -n "$SNAPSHOT_EVERY" ] && snapshots="--model.evaluation.snapshot_every $SNAPSHOT_EVERY"
  for arm in $ARMS; do
    # method:seed, or method:seed:key=value,key=value for --model.key value (a sweep's arm)
    local method seed options extra="" tag=""
    IFS=: read -r method seed options <<< "$arm"
    for option in ${options//,/ }; do
      if [ "${option%%=*}" = warm_start ]; then  # fine-tune from a carried checkpoint's network
        extra+=" --warm_start ${option#*=}"; tag+="-warm"; continue
      fi
      extra+=" --model.${option%%=*} ${option#*=}"; tag+="-${option%%=*}${option#*=}"
    done
    tag=${tag//[^A-Za-z0-9.=_-]/_}  # a path in a value must not make a folder of the run's name
    local name=online-$method$tag-${NUM_DEMOS}demos-seed$seed
    script+=" timeout $((seconds + 120)) $PYTHON -m visual_iq fit --config conf/pong_online.yaml --threads $THREADS \
      --seed_everything $seed --model.seed $seed --model.objective.method $method $extra $snapshots \
      --model.data.demos \"[${DEMOS// /,}]\" --model.data.num_demos $NUM_DEMOS \
      --trainer.max_time $max_time --trainer.val_check_interval $VAL_EVERY \
      --trainer.accelerator $ACCELERATOR --trainer.enable_progress_bar false --model.evaluation.video false \
      --trainer.logger.init_args.save_dir runs_device --trainer.logger.init_args.name $name \
      --trainer.logger.init_args.version 0 > runs_device/$name.log 2>&1 & pids+=(\$!);"
  done
  script+=' wait "${pids[@]}"; touch runs_device/arms.done'
  setsid nohup bash -c "$script" > runs_device/arms.log 2>&1 < /dev/null &
}

wait_for_arms() {
  local deadline=$((SECONDS + $1))
  while [ ! -e runs_device/arms.done ] && [ $SECONDS -lt $deadline ]; do sleep 5; done
}

# Each arm's events and log, its best checkpoint so far and its last one exported as small agents
# (network, hparams, env settings; the EMA weights where the run keeps them), into $OUT/<arm>.tgz,
# one archive per arm (the device tool returns files of at most 16 MB); the full checkpoints stay.
pack() {
  for log in runs_device/online-*.log; do
    echo "== $log"; grep -E "Error|error|could not record|Time limit" "$log" | tail -n 3
  done
  rm -rf /tmp/pack && mkdir -p /tmp/pack
  for run in runs_device/*/version_0; do
    local arm target
    arm=$(basename "$(dirname "$run")")
    target=/tmp/pack/$arm/runs_device/$arm/version_0
    mkdir -p "$target"
    cp "$run"/events.* "$run"/hparams.yaml "$target"/ 2>/dev/null
    cp "runs_device/$arm.log" "/tmp/pack/$arm/runs_device/" 2>/dev/null
    local best
    best=$(ls "$run"/checkpoints/best-*.ckpt 2>/dev/null | head -n 1)
    [ -n "$best" ] && $PYTHON visual-iq export "$best" "$target/best_agent.ckpt" && basename "$best" > "$target/best_name.txt"
    [ -e "$run/checkpoints/last.ckpt" ] && $PYTHON visual-iq export "$run/checkpoints/last.ckpt" "$target/last_agent.ckpt"
    local snaps
    snaps=$(ls "$run"/checkpoints/snap-*.ckpt 2>/dev/null | sort -V | tail -n "$AVERAGE_LAST")
    # shellcheck disable=SC2086  # one path per word
    [ -n "$snaps" ] && $PYTHON visual-iq export $snaps "$target/averaged_agent.ckpt" \
      && basename -a $snaps > "$target/averaged_names.txt"
    tar czf "$OUT/$arm.tgz" -C "/tmp/pack/$arm" runs_device
  done
  ls -la "$OUT"
}

case $MODE in
  checks)
    run_checks ;;
  all)
    TOTAL_SECONDS=${1:-540}
    run_checks
    TRAIN_SECONDS=$((TOTAL_SECONDS - (SECONDS - STARTED) - ${RESERVE:-100}))
    start_arms "$TRAIN_SECONDS"
    wait_for_arms $((TRAIN_SECONDS + 150))
    pack ;;
  start)
    TRAIN_SECONDS=$1 WAIT_SECONDS=$2
    run_checks
    start_arms "$TRAIN_SECONDS"
    wait_for_arms $((WAIT_SECONDS - (SECONDS - STARTED)))
    pack ;;
  finish)
    wait_for_arms "$1"
    [ -e runs_device/arms.done ] || echo "the arms are still running: packing what exists"
    pack ;;
esac
