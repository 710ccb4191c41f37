#!/usr/bin/env bash
# The GPU check of issue 15, in one command for the device machine (no Node,
# no network; a CUDA PyTorch wheel with headers, a C++ compiler, cmake):
#
#   on this machine:   bash scripts/pack-for-device.sh         (makes .device/)
#   on the device:     run(command="bash scripts/gpu-check.sh", carry=[".device"], timeout_s=600)
#
# It unpacks the carried Node and pack under /tmp/pd-device, builds the addon
# against the device's PyTorch, and then, each step timed and bounded so the
# whole stays inside PD_GPU_CHECK_BUDGET seconds (default 540: one device
# command may run 600):
#   toolchain   compilers, cmake, python, nvidia-smi (the first thing it checks)
#   torch       the PyTorch it found: version, CUDA, GPUs
#   build       the addon against that libtorch (node-gyp, all cores)
#   info        `patch-diffusion info` (must list the GPU)
#   tests-cuda  reference vectors (in fp32, bf16 and fp16 too), loss and sampler parity, seeded
#               noise CPU = GPU, gradients GPU vs CPU, GPU memory figures, the 1-byte dropout mask
#               (values and gradients bit for bit against the composite ops, bytes kept for
#               backward) (PD_TEST_DEVICE=cuda)
#   tests-engine the engine tests (CPU tensors) on the CUDA build
#   resume      train-resume.test.js on cuda, PD_DETERMINISTIC=1 (deterministic cuDNN)
#   tests-precision train-precision.test.js on cuda: --precision fp16 with --ls (trains, resumes
#               bit for bit, static loss scaling, overflow → nan_to_num), --tf32 set for the run
#               and restored after train() returns
#   train       a short training run (Fashion-MNIST 5k), kimg/s and step time
#   sample      sampling from it, images/s
#   train-fp16  the same short run in --precision fp16 --ls 100 --tf32 (GPUs without bf16), its
#               device line and step time
#   peer-fp32, peer-bf16, peer-fp16   bench/peer.js, official vs ours on the same GPU (ours
#               bf16, then ours fp16, against the official --fp16), each with --official-compile:
#               the official network also under torch.compile (default and reduce-overhead), the
#               fastest official variant the reference
#   emoji-p1, emoji-p0.5   the quality study's 64×64 colour set (bench/quality-study-configs.ts's
#               settings) on the GPU, full images against real_p 0.5, side by side for what the
#               budget has left: SWD every 32 kimg; stats.jsonl, log, last sample grid and last
#               network snapshot of each
# Everything goes to $OUT/results.tar.gz (one .txt per step, steps.tsv (step, status, seconds),
# summary.md, the JSON records and the training runs' logs); summary.md, steps.tsv and the
# console log beside it. A failed step does
# not stop the later ones; a step is skipped when the budget cannot fit it.
#
# Without a GPU (a rehearsal on a CPU machine) the same steps run on the CPU,
# smaller: OUT=/tmp/gpu-rehearsal bash scripts/gpu-check.sh
#
# Environment: OUT (required), PD_PYTHON (default python3: the interpreter with
# the CUDA PyTorch), PD_GPU_CHECK_BUDGET, PD_GPU_CHECK_STEPS (a space-separated
# subset of the step names, e.g. "toolchain torch" for a first look that costs
# seconds; later steps need unpack and build, or a build/ left by an earlier
# command on the same warm machine), PD_PEER_ARGS (default below).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
# The device tool brings back at most 8 files from $OUT: the steps write under $RES, and finish() packs
# it into $OUT/results.tar.gz beside summary.md, steps.tsv and the console log.
RES=${PD_GPU_CHECK_RESULTS:-/tmp/pd-gpu-results}
rm -rf "$RES" && mkdir -p "$RES"
LOG="$OUT/gpu-check.log"
BUDGET=${PD_GPU_CHECK_BUDGET:-540}
T0=$(date +%s)
W=/tmp/pd-device
exec > >(tee -a "$LOG") 2>&1
echo "gpu-check: $(date -u +%FT%TZ) on $(hostname); budget ${BUDGET} s; repo $REPO"
printf 'step\tstatus\tseconds\n' > "$RES/steps.tsv"

elapsed() { echo $(($(date +%s) - T0)); }
wanted() { [ -z "${PD_GPU_CHECK_STEPS:-}" ] || [[ " $PD_GPU_CHECK_STEPS " == *" $1 "* ]]; }
# step NAME MIN_SECONDS CMD...: runs CMD with its output in $RES/NAME.txt, bounded by the time left.
step() {
  local name=$1 need=$2; shift 2
  if ! wanted "$name"; then return 0; fi
  local left=$((BUDGET - $(elapsed)))
  if [ "$left" -lt "$need" ]; then
    printf '%s\tskipped (%s s left, needs %s)\t0\n' "$name" "$left" "$need" >> "$RES/steps.tsv"
    echo "== $name: skipped, $left s left"
    return 1
  fi
  echo "== $name (up to $left s)"
  local s; s=$(date +%s)
  local rc
  if declare -F "$1" >/dev/null; then
    "$@" > "$RES/$name.txt" 2>&1  # a function of this script (short: toolchain, unpack, torch, build), in this shell
    rc=$?
  else
    timeout --kill-after=10 "$left" "$@" > "$RES/$name.txt" 2>&1
    rc=$?
  fi
  local status=ok
  [ $rc -eq 0 ] || status="failed (exit $rc)"
  [ $rc -eq 124 ] && status="timed out"
  printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - s))" >> "$RES/steps.tsv"
  tail -n 4 "$RES/$name.txt" | sed "s/^/   $name: /"
  return $rc
}

finish() {
  {
    echo "# gpu-check $(date -u +%FT%TZ)"
    echo
    echo "device: $DEVICE_NAME; commit $(cat "$W/pd/COMMIT" 2>/dev/null || git rev-parse HEAD 2>/dev/null); $(elapsed) s in all"
    echo
    echo '| step | status | s |'; echo '|---|---|---|'
    tail -n +2 "$RES/steps.tsv" | awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " |"}'
    for f in toolchain torch info; do [ -f "$RES/$f.txt" ] && { echo; echo "## $f"; echo '```'; grep -v '^\s*$' "$RES/$f.txt" | head -40; echo '```'; }; done
    for f in tests-cuda tests-engine resume tests-precision; do
      [ -f "$RES/$f.txt" ] || continue
      echo; echo "## $f"; echo '```'
      grep -E '^# (tests|pass|fail|skipped)|^not ok|relative error|^# Subtest' "$RES/$f.txt" | head -60
      echo '```'
    done
    for f in train train-fp16; do [ -f "$RES/$f.txt" ] && { echo; echo "## $f: device line"; echo '```'; grep -m1 '^Threads: ' "$RES/$f.txt"; echo '```'; }; done
    for f in train sample train-fp16 peer-fp32 peer-bf16 peer-fp16 emoji-p1 emoji-p0.5; do [ -f "$RES/$f.txt" ] && { echo; echo "## $f"; echo '```'; tail -n 40 "$RES/$f.txt"; echo '```'; }; done
  } > "$RES/summary.md"
  cp "$RES/summary.md" "$RES/steps.tsv" "$OUT/" && tar -C "$RES" -czf "$OUT/results.tar.gz" .
  echo "gpu-check: done in $(elapsed) s; $OUT/summary.md, everything in $OUT/results.tar.gz"
}
DEVICE_NAME="unknown"
trap finish EXIT

# ---- toolchain: first, so a missing compiler is known at once ------------------------------
toolchain() {
  uname -a; grep -E '^(PRETTY_NAME|VERSION_ID)=' /etc/os-release 2>/dev/null
  echo "cores $(nproc); $(free -g | awk '/Mem:/ {print $2 " GiB memory"}'); /tmp: $(df -h /tmp | awk 'NR==2 {print $4 " free"}')"
  local ok=1
  for t in c++ g++ gcc clang++ make cmake python3 "${PD_PYTHON:-python3}" xz nvidia-smi; do
    if command -v "$t" >/dev/null 2>&1; then echo "$t: $(command -v "$t"): $("$t" --version 2>&1 | head -1)"; else echo "$t: MISSING"; fi
  done
  command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || { echo "no C++ compiler: the addon cannot be built"; ok=0; }
  command -v make >/dev/null 2>&1 || { echo "no make: node-gyp cannot build"; ok=0; }
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
  [ $ok -eq 1 ]
}
step toolchain 5 toolchain || { echo "toolchain incomplete: stopping"; exit 1; }

# ---- the carried Node and pack -----------------------------------------------------------
# A second command on the same warm machine keeps what the first unpacked and built (same pack: same checksum).
PACK_SUM=$(cat .device/node.xz .device/pack.tar.xz 2>/dev/null | sha1sum | cut -c1-40)
unpack() {
  [ -f .device/node.xz ] && [ -f .device/pack.tar.xz ] || { echo "no .device/node.xz or .device/pack.tar.xz: run scripts/pack-for-device.sh and carry .device"; return 1; }
  if [ "$(cat "$W/pack.sha1" 2>/dev/null)" = "$PACK_SUM" ] && [ -x "$W/bin/node" ]; then
    echo "already unpacked by an earlier command on this machine (pack $PACK_SUM)"
  else
    rm -rf "$W" && mkdir -p "$W/bin"
    if command -v xz >/dev/null 2>&1; then
      xz -dc .device/node.xz > "$W/bin/node" && xz -dc .device/pack.tar.xz | tar -x -C "$W"
    else  # Python's lzma, where xz is not installed
      "${PD_PYTHON:-python3}" - "$W" <<'PY'
import lzma, shutil, sys, tarfile
w = sys.argv[1]
with lzma.open('.device/node.xz') as src, open(f'{w}/bin/node', 'wb') as dst: shutil.copyfileobj(src, dst)
with tarfile.open('.device/pack.tar.xz', 'r:xz') as t: t.extractall(w)
PY
    fi
    chmod +x "$W/bin/node"
    "$W/bin/node" --version || return 1
    du -sh "$W/pd"/* | sed 's/^/  /'
    echo "$PACK_SUM" > "$W/pack.sha1"
  fi
  # The repository's node_modules and dist are the pack's (dist copied: Node resolves symlinks, and the addon is found from dist's real path).
  rm -rf node_modules dist && ln -s "$W/pd/node_modules" node_modules && cp -r "$W/pd/dist" dist
}
step unpack 20 unpack || { echo "cannot unpack: stopping"; exit 1; }
export PATH="$W/bin:$PATH"
export PD_REFERENCE_DIR="$W/pd/reference"

# ---- PyTorch: the interpreter find-libtorch asks is python3 on the PATH -------------------
PY=$(command -v "${PD_PYTHON:-python3}")
mkdir -p "$W/pybin" && ln -sf "$PY" "$W/pybin/python3" && export PATH="$W/pybin:$PATH"
torch_info() {
  "$PY" - <<'PY'
import os, torch
print(f"torch {torch.__version__} at {os.path.dirname(torch.__file__)}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version() if torch.cuda.is_available() else 'n/a'}")
print(f"cuda available: {torch.cuda.is_available()}; devices: {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}")
print(f"nccl: {torch.distributed.is_nccl_available() if torch.distributed.is_available() else 'no distributed'}")
try:
    import numpy; print(f"numpy {numpy.__version__}")
except ImportError:
    print("numpy: MISSING (the official side of the peer benchmark needs it)")
PY
}
step torch 30 torch_info
DEVICE=cpu
if grep -q '^cuda available: True' "$RES/torch.txt" 2>/dev/null; then DEVICE=cuda; fi
DEVICE_NAME=$(sed -n 's/^cuda available: True; devices: \[\(.*\)\]/\1/p' "$RES/torch.txt" 2>/dev/null | tr -d "'" )
[ -n "$DEVICE_NAME" ] || DEVICE_NAME="no GPU (a CPU rehearsal)"
echo "device for the runs: $DEVICE ($DEVICE_NAME)"

# ---- the addon ---------------------------------------------------------------------------
build() {
  local describe; describe=$(node scripts/find-libtorch.cjs describe) || return 1
  echo "$describe"
  if [ -f build/Release/torch_addon.node ] && [ "$(cat "$W/build.stamp" 2>/dev/null)" = "$PACK_SUM $describe" ]; then
    echo "already built by an earlier command on this machine"; return 0
  fi
  # A wheel without the CUDA runtime's headers (no nvidia-cuda-crt): the carried CUDA 13.0 ones, if this is CUDA 13.
  if [[ "$describe" == *"basic CUDA support only"* ]] && grep -q 'CUDA 13\.' "$RES/torch.txt" && [ -d "$W/pd/cuda13/include" ]; then
    export CUDA_HOME="$W/pd/cuda13"
    echo "using the carried CUDA 13.0 runtime headers: $(node scripts/find-libtorch.cjs describe)"
  fi
  npm_config_nodedir="$W/pd/nodedir" node scripts/build-native.cjs && ls -la build/Release/torch_addon.node &&
    { readelf -d build/Release/torch_addon.node 2>/dev/null | grep -E 'NEEDED|RUNPATH' || true; } && echo "$PACK_SUM $describe" > "$W/build.stamp"
}
step build 60 build || { echo "the addon did not build: stopping"; exit 1; }
step info 10 node dist/src/cli/main.js info

# ---- tests ----------------------------------------------------------------------------------
TEST_ENV=(env PD_TEST_DEVICE="$DEVICE")
step tests-cuda 30 "${TEST_ENV[@]}" node --test --test-concurrency=1 dist/test/engine-device.test.js dist/test/networks-reference.test.js dist/test/diffusion-parity.test.js \
  dist/test/engine-precision.test.js dist/test/dropout-mask.test.js
step tests-engine 30 node --test --test-concurrency=1 dist/test/engine-*.test.js
step resume 30 "${TEST_ENV[@]}" PD_DETERMINISTIC=1 node --test --test-concurrency=1 dist/test/train-resume.test.js
# fp16 with loss scaling and its overflow handling, and --tf32 (on a CPU rehearsal fp16 runs emulated: PD_FP16_EMULATED inside the test).
step tests-precision 30 "${TEST_ENV[@]}" PD_DETERMINISTIC=1 node --test --test-concurrency=1 dist/test/train-precision.test.js

# ---- a short training run and sampling from it -----------------------------------------------
DATA="$W/pd/fashion-mnist-5k.zip"
[ -f "$DATA" ] || DATA=fashion-mnist-5k
if [ "$DEVICE" = cuda ]; then TRAIN=(--arch ddpmpp --batch 128 --duration 0.01 --tick 2); SAMPLE=(--seeds 0-511 --batch 256 --steps 18)
else TRAIN=(--arch small --batch 16 --duration 0.002 --tick 1); SAMPLE=(--seeds 0-7 --batch 8 --steps 4); fi
# The run directory stays on the device (snapshots and states are large); its logs come back.
RUNS="$W/runs"
step train 60 node dist/src/cli/main.js train --data "$DATA" --outdir "$RUNS" "${TRAIN[@]}" --snap 1000 --dump 1000 --grid-seeds 4 --grid-steps 2 --device "$DEVICE" --seed 0
RUN=$(ls -d "$RUNS"/*/ 2>/dev/null | head -1)
if [ -n "$RUN" ]; then
  mkdir -p "$RES/run" && cp "$RUN"/*.txt "$RUN"/*.json "$RUN"/*.jsonl "$RES/run/" 2>/dev/null
  step sample 30 node dist/src/cli/main.js generate --network "$RUN" --outdir "$W/samples" "${SAMPLE[@]}" --device "$DEVICE"
fi
# The same run in fp16 with the official loss scaling and TF32 (a CPU rehearsal: emulated fp16, tens of times slower, so fewer steps).
RUNS16="$W/runs-fp16"
TRAIN16=("${TRAIN[@]}"); [ "$DEVICE" = cuda ] || TRAIN16=(--arch small --batch 16 --duration 0.0003 --tick 0.1)
PD_FP16_EMULATED=1 step train-fp16 60 node dist/src/cli/main.js train --data "$DATA" --outdir "$RUNS16" "${TRAIN16[@]}" --precision fp16 --ls 100 --tf32 \
  --snap 1000 --dump 1000 --grid-seeds 4 --grid-steps 2 --device "$DEVICE" --seed 0
RUN16=$(ls -d "$RUNS16"/*/ 2>/dev/null | head -1)
[ -n "$RUN16" ] && mkdir -p "$RES/run-fp16" && cp "$RUN16"/*.txt "$RUN16"/*.json "$RUN16"/*.jsonl "$RES/run-fp16/" 2>/dev/null

# ---- official vs ours on the same device -------------------------------------------------
if [ -d "$W/pd/official" ]; then
  if [ "$DEVICE" = cuda ]; then PEER=(${PD_PEER_ARGS:---arch ddpmpp --channels 3 --batch 64 --quick --block 5 --warmup 3 --sample-batch 256}); else PEER=(${PD_PEER_ARGS:---quick --rounds 1 --sample-batch 4 --sample-steps 4 --patch-sizes 8}); fi
  # --official-compile: the official network under torch.compile too (on CUDA the default mode and reduce-overhead; the
  # compilation runs in the warm-up, a few minutes for DDPM++); PD_PEER_COMPILE=0 leaves it out where the budget is short.
  COMPILE=(--official-compile); [ "${PD_PEER_COMPILE:-1}" = 0 ] && COMPILE=()
  PEER_COMMON=(node dist/bench/peer.js --official "$W/pd/official" --python "$PY" --device "$DEVICE" --official-format nchw "${COMPILE[@]}" "${PEER[@]}")
  step peer-fp32 90 "${PEER_COMMON[@]}" --json "$RES/peer-fp32.json"
  step peer-bf16 90 "${PEER_COMMON[@]}" --precision bf16 --official-fp16 --json "$RES/peer-bf16.json"
  PD_FP16_EMULATED=1 step peer-fp16 90 "${PEER_COMMON[@]}" --precision fp16 --official-fp16 --json "$RES/peer-fp16.json"
fi
# ---- the 64×64 colour set on the GPU, with what the budget has left ----------------------------
# The quality study's emoji settings (`small`, batch 32, seed 0; SWD of 300 samples at 12 Heun steps against
# the training set, every 32 kimg), full images against real_p 0.5 for equal wall-clock minutes. Both run at
# the same time: a `small` network at batch 32 leaves an H200 mostly idle (each step is bound by kernel
# launches), so running them side by side doubles each one's minutes, and both see the same contention.
# Timing/total_sec in stats.jsonl includes the metric evaluations (Timing/metrics_sec each): subtract them
# for training minutes. The last network snapshot of each comes back, to measure here with more samples.
EMOJI_ZIP="$W/pd/emoji.zip"
if [ "$DEVICE" = cuda ] && [ -f "$EMOJI_ZIP" ] && { wanted emoji-p1 || wanted emoji-p0.5; }; then
  per=$((BUDGET - $(elapsed) - 25))
  minutes=$(awk -v s="$per" 'BEGIN { printf "%.2f", (s - 45) / 60 }')
  echo "emoji runs, side by side: $per s, --max-minutes $minutes"
  pids=()
  for p in 1 0.5; do
    wanted "emoji-p$p" || continue
    [ "$per" -ge 90 ] || { printf '%s\tskipped (%s s, needs 90)\t0\n' "emoji-p$p" "$per" >> "$RES/steps.tsv"; continue; }
    step "emoji-p$p" 60 node dist/src/cli/main.js train --data "$EMOJI_ZIP" --arch small --batch 32 --real-p "$p" --seed 0 \
      --outdir "$W/emoji-p$p" --duration 1000 --max-minutes "$minutes" --tick 32 --snap 1 --dump 1000000 \
      --grid-seeds 16 --grid-steps 12 --metrics swd --metrics-samples 300 --device cuda &
    pids+=($!)
  done
  # The runs' own pids: a bare `wait` would also wait for the log's tee (a process substitution), forever.
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
  for p in 1 0.5; do
    ERUN=$(ls -d "$W/emoji-p$p"/*/ 2>/dev/null | head -1)
    if [ -n "$ERUN" ]; then
      mkdir -p "$RES/emoji-p$p" && cp "$ERUN"/*.txt "$ERUN"/*.json "$ERUN"/*.jsonl "$RES/emoji-p$p/" 2>/dev/null
      last_grid=$(ls "$ERUN"/samples-*.png 2>/dev/null | sort | tail -1)
      [ -n "$last_grid" ] && cp "$last_grid" "$RES/emoji-p$p/last-grid.png"
      last_snap=$(ls "$ERUN"/network-snapshot-*.safetensors 2>/dev/null | sort | tail -1)
      [ -n "$last_snap" ] && cp "$last_snap" "$RES/emoji-p$p/"
    fi
  done
fi
exit 0
