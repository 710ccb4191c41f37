#!/usr/bin/env bash
# The README's first command: set up this machine, train a small Patch
# Diffusion model on the built-in Fashion-MNIST on the CPU (about 15 minutes
# on 2 cores), then sample 64 images from it. Every step is printed, so you
# can rerun or vary it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

DURATION="${QUICKSTART_MIMG:-0.15}"
run() { echo "+ $*"; "$@"; }

run node dist/src/cli/main.js train --data fashion-mnist --arch small --duration "$DURATION" \
  --outdir runs --desc quickstart --tick 5 --snap 6 --dump 6 --seed 0
rundir=$(ls -d runs/*-quickstart | sort | tail -n 1)
run node dist/src/cli/main.js generate --network "$rundir" --outdir "$rundir/samples" --seeds 0-63 --steps 32
echo
echo "Samples: $rundir/samples/grid.png (one PNG per seed beside it)"
echo "Loss curve: $rundir/loss.png; training statistics: $rundir/stats.jsonl"
