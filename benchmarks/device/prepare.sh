#!/usr/bin/env bash
# Here (the CPU machine, which reaches the package registries): download, into .whl/, the wheels
# that the GPU machine's image lacks (Python 3.12 there; it has torch, lightning, tensorboard,
# opencv, numpy, pyyaml, cloudpickle). Then: device run with carry [".whl"] and
# `bash benchmarks/device/run.sh SECONDS` (see run.sh).
# The device run copies the tracked tree, which with every shipped demo and agent (~115 MB on
# 2026-11-29) is over its 64 MiB: for the call, take what the run does not read out of the index
# and put it back after (commit nothing in between), e.g. for the checks, which read demos/pong:
#   git rm -r --cached -q demos/pong_extra2 demos/breakout_late demos/breakout_late_more agents
#   printf '%s\n' demos/pong_extra2 demos/breakout_late demos/breakout_late_more agents >> .git/info/exclude
# (2026-11-30 the checks also went without demos/pong_extra, demos/pong_more and demos/breakout: 11 MB
# tracked + 4.6 MB of wheels travelled)
#   ... device run ...; then: git reset -q, and remove those lines from .git/info/exclude
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
for wheel in gymnasium==1.4.0 ale-py==0.12.1 jsonargparse==4.53.0 docstring_parser==0.18.0 \
             typeshed_client==2.15.0 Farama-Notifications==0.0.6; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$wheel"
done
ls -la .whl
