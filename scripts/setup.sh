#!/usr/bin/env bash
# Sets up a fresh Debian machine for patch-diffusion: the tensor engine
# (libtorch), Fashion-MNIST, npm packages, the native addon and the TypeScript
# build. Safe to run again: it skips what is already there, and rebuilds the
# addon when the engine it was built against changes.
#
# Which libtorch (the engine), in this order:
#   LIBTORCH=/path/to/libtorch     an unpacked libtorch (include/, lib/): always wins
#   PD_ENGINE=wheel                PyTorch's wheel in a project-local virtual
#                                  environment (.venv; `pip install torch`)
#   PD_ENGINE=debian               Debian's libtorch-dev (1.13, /usr)
#   PD_ENGINE=auto (the default)   the wheel where pip can get it, else Debian's.
# The wheel is the default because it is the faster engine: libtorch 2.x with
# MKL and oneDNN 3 trains our network 1.38x faster than Debian's 1.13 at the
# p = 0.5 patch mix on the same machine, and has the bf16 kernels (RESULTS.md,
# section 5.1).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${PD_ENGINE:-auto}"
case "$ENGINE" in auto|wheel|debian) ;; *) echo "[setup] PD_ENGINE='$ENGINE': expected auto, wheel or debian" >&2; exit 2;; esac
[ -n "${LIBTORCH:-}" ] && ENGINE="libtorch"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "[setup] installing Debian packages: ${missing[*]}"
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

# libgloo-dev: gloo's headers, which the addon's multi-process training
# (libtorch's c10d ProcessGroupGloo) compiles against; neither libtorch ships them.
apt_install dataset-fashion-mnist g++ make python3 libgloo-dev

# PyTorch's CPU wheel into .venv. pip retries an index it cannot reach five
# times per package with back-off (minutes on a machine whose packages come
# from a local store); one retry keeps a flaky connection working and an
# unreachable index cheap. PIP_RETRIES / PIP_DEFAULT_TIMEOUT, when set, win.
install_wheel() {
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "[setup] PyTorch wheel already in .venv: $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
    apt_install python3-venv || return 1
  fi
  local py=python3
  python3 -c "import ensurepip" 2>/dev/null || py=/usr/bin/python3
  echo "[setup] installing PyTorch's CPU wheel into .venv (pip install torch)"
  rm -rf .venv
  "$py" -m venv .venv || return 1
  PIP_RETRIES="${PIP_RETRIES:-1}" PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-15}" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    .venv/bin/pip install -q torch numpy 2>&1 | grep -v "^WARNING: \(Retrying\|Location\)" || true
  .venv/bin/python -c "import torch" 2>/dev/null
}

case "$ENGINE" in
  wheel)
    install_wheel || { echo "[setup] PD_ENGINE=wheel: could not install PyTorch with pip (see above)" >&2; exit 1; } ;;
  auto)
    if ! install_wheel; then
      echo "[setup] pip could not install PyTorch: falling back to Debian's libtorch-dev"
      rm -rf .venv
      ENGINE=debian
    else
      ENGINE=wheel
    fi ;;
esac
if [ "$ENGINE" = debian ]; then
  apt_install libtorch-dev libopenblas0-pthread
  # libtorch calls the generic libblas.so.3 for matmuls; make sure it is OpenBLAS, not the slow reference BLAS.
  blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
  echo "[setup] BLAS in use: ${blas:-unknown}"
  export LIBTORCH_USE_PYTORCH=0
fi

# For the tests of the training dashboard and the TensorBoard files; neither is
# needed to train, so a failure here only makes those tests skip (they say why).
#   chromium: Debian's browser, driven headless by playwright-core (an npm devDependency).
#   tensorboard: Python's, to read our event files back; into .cache/python-tensorboard
#   (pip --target), so the engine's .venv is left as it is.
apt_install chromium || echo "[setup] could not install Debian's chromium: the browser tests will skip"
install_tensorboard() {
  local dir=.cache/python-tensorboard py=""
  if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then py=.venv/bin/python
  elif python3 -m pip --version >/dev/null 2>&1; then py=python3
  else echo "[setup] no pip for Python: the TensorBoard read-back test will skip"; return 0; fi
  if PYTHONPATH="$dir" "$py" -c "import tensorboard.backend.event_processing.event_accumulator" 2>/dev/null; then return 0; fi
  echo "[setup] installing Python's tensorboard into $dir (pip install --target)"
  rm -rf "$dir"
  PIP_RETRIES="${PIP_RETRIES:-1}" PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-15}" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$py" -m pip install -q --target "$dir" tensorboard 2>&1 | grep -v "^WARNING: \(Retrying\|Location\)" || true
  PYTHONPATH="$dir" "$py" -c "import tensorboard.backend.event_processing.event_accumulator" 2>/dev/null ||
    echo "[setup] pip could not install tensorboard: the TensorBoard read-back test will skip"
}
install_tensorboard
# onnxruntime for Python, into .venv when there is one: test/onnx-export.test.ts
# runs the exported ONNX model with it as well as with onnxruntime-node. Optional
# (that check is skipped without it), so a pip that cannot reach an index costs
# one short try, never the set-up.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import onnxruntime" 2>/dev/null; then
  echo "[setup] installing onnxruntime for Python into .venv (optional: the ONNX export test's Python check)"
  PIP_RETRIES="${PIP_RETRIES:-1}" PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-15}" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    timeout 300 .venv/bin/pip install -q onnxruntime 2>&1 | grep -v "^WARNING: \(Retrying\|Location\)" || true
  .venv/bin/python -c "import onnxruntime" 2>/dev/null ||
    echo "[setup] pip could not install onnxruntime: the ONNX export test skips its Python check"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --ignore-scripts
fi
engine=$(node scripts/find-libtorch.cjs describe)
echo "[setup] engine: $engine"
if [ ! -f build/Release/torch_addon.node ] || [ "$(cat build/engine.txt 2>/dev/null)" != "$engine" ] ||
   [ -n "$(find native binding.gyp scripts/find-libtorch.cjs -newer build/Release/torch_addon.node 2>/dev/null | head -1)" ]; then
  echo "[setup] building the libtorch addon"
  node scripts/build-native.cjs || exit 1
  echo "$engine" > build/engine.txt
fi
echo "[setup] compiling TypeScript"
npx tsc -p .
echo "[setup] ready: $(node -e "import('./dist/src/tensor/index.js').then((m) => console.log(m.describeEngine()))")"
