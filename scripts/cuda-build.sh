#!/usr/bin/env bash
# Compiles the addon against PyTorch's CUDA wheel and checks that it loads,
# on a machine with or without a GPU (CI runs it: .ci/run). It does not touch
# the project's own build: the CUDA addon goes to build-cuda/torch_addon.node,
# which PD_ADDON=build-cuda/torch_addon.node selects.
#
#   bash scripts/cuda-build.sh            install (once) + compile + load check
#
# The wheel (torch==2.14.1, CUDA 13) and the nvidia-* wheels libtorch_cuda links
# to go into $PD_CUDA_TORCH_DIR (default ~/.cache/patch-diffusion/torch-2.14.1-cu13,
# about 4.5 GB), installed once with `pip install --no-deps --target`: a plain
# `pip install torch` wants cuda-bindings and triton, which the addon does not
# use. All wheels go in one pip command, since `pip --target` does not merge a
# second install into an existing nvidia/ folder.
#
# Without a GPU, `info` must say "CUDA build, no device" and `--device cuda`
# must fail with an error that says why; with one, `info` must list it.
# Needs dist/ (npx tsc -p .) and node_modules (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${PD_CUDA_TORCH_VERSION:-2.14.1}"
DIR="${PD_CUDA_TORCH_DIR:-$HOME/.cache/patch-diffusion/torch-$TORCH_VERSION-cu13}"
# What libtorch_cuda, libtorch_cpu and libtorch_nvshmem load (readelf -d), the
# CUDA runtime with its headers (cuda-runtime + cuda-crt + cuda-cccl), and
# cuSOLVER's headers, which ATen's CUDA context (and so c10d's NCCL header) includes.
WHEELS=(
  "torch==$TORCH_VERSION"
  nvidia-cuda-runtime nvidia-cuda-crt nvidia-cuda-cccl nvidia-cublas nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusparse
  nvidia-cusolver nvidia-nvjitlink nvidia-cuda-nvrtc nvidia-cudnn-cu13 nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvshmem-cu13
)

t0=$(date +%s)
if [ -f "$DIR/.complete" ] && [ -f "$DIR/torch/lib/libtorch_cuda.so" ]; then
  echo "[cuda-build] CUDA wheel already in $DIR"
else
  echo "[cuda-build] installing PyTorch $TORCH_VERSION (CUDA 13) and its nvidia-* libraries into $DIR"
  rm -rf "$DIR.partial"
  mkdir -p "$(dirname "$DIR")"
  PIP_RETRIES="${PIP_RETRIES:-1}" PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-15}" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    python3 -m pip install -q --no-deps --no-compile --target "$DIR.partial" "${WHEELS[@]}" 2>&1 |
    grep -v "^WARNING: \(Retrying\|Location\|Running pip as\|Target directory\)" || true
  [ -f "$DIR.partial/torch/lib/libtorch_cuda.so" ] || { echo "[cuda-build] pip could not install the CUDA wheel (see above)" >&2; exit 1; }
  rm -rf "$DIR" && mv "$DIR.partial" "$DIR" && touch "$DIR/.complete"
fi
t1=$(date +%s)
echo "[cuda-build] install: $((t1 - t0)) s; $(du -sh "$DIR" | cut -f1) in $DIR"

# A private copy of the sources, so node-gyp's build/ there is not the project's.
STAGE=build-cuda/stage
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -r binding.gyp package.json native scripts "$STAGE/"
ln -s "$PWD/node_modules" "$STAGE/node_modules"
export LIBTORCH="$DIR/torch"
echo "[cuda-build] $(node scripts/find-libtorch.cjs describe)"
if ! (cd "$STAGE" && node scripts/build-native.cjs) > build-cuda/build.log 2>&1; then
  tail -40 build-cuda/build.log; echo "[cuda-build] compile failed (build-cuda/build.log)" >&2; exit 1
fi
cp "$STAGE/build/Release/torch_addon.node" build-cuda/torch_addon.node
t2=$(date +%s)
ADDON="$PWD/build-cuda/torch_addon.node"
echo "[cuda-build] compile: $((t2 - t1)) s; addon $(du -h "$ADDON" | cut -f1); links $(readelf -d "$ADDON" | grep -o 'lib[a-z0-9_]*cuda[a-z0-9_]*\.so[.0-9]*' | sort -u | tr '\n' ' ')"

# Loads with every symbol bound now (not lazily), without LD_LIBRARY_PATH.
env -u LD_LIBRARY_PATH LD_BIND_NOW=1 node -e "const a = require(process.argv[1]); if (!a.cudaBuild()) { console.error('not a CUDA build'); process.exit(1); }" "$ADDON"
info=$(env -u LD_LIBRARY_PATH PD_ADDON="$ADDON" node dist/src/cli/main.js info)
echo "$info" | grep -E '^(libtorch|cuda|  cuda:|multi-process)' | sed 's/^/[cuda-build] info: /'
echo "$info" | grep -q '^cuda: CUDA build' || { echo "[cuda-build] info does not name the CUDA build" >&2; exit 1; }
if echo "$info" | grep -q '^cuda: CUDA build.*, no device'; then
  set +e
  err=$(PD_ADDON="$ADDON" node dist/src/cli/main.js generate --network /nonexistent --seeds 0 --device cuda 2>&1)
  rc=$?
  set -e
  echo "[cuda-build] --device cuda without a GPU: exit $rc: ${err#error: }"
  [ "$rc" -ne 0 ] && echo "$err" | grep -q "is a CUDA build" || { echo "[cuda-build] expected a clear 'CUDA build, no GPU' error" >&2; exit 1; }
fi
echo "[cuda-build] ok: CUDA build compiled and loaded ($((t2 - t0)) s in all)"
