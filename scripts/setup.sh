#!/usr/bin/env bash
# Sets up a fresh Debian machine for patch-diffusion: system packages
# (libtorch, OpenBLAS, Fashion-MNIST), npm packages, the native addon and
# the TypeScript build. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libtorch-dev libopenblas0-pthread dataset-fashion-mnist g++ make python3)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# libtorch calls the generic libblas.so.3 for matmuls; make sure it is OpenBLAS, not the slow reference BLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
echo "[setup] BLAS in use: ${blas:-unknown}"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --ignore-scripts
fi
if [ ! -f build/Release/torch_addon.node ] || [ -n "$(find native binding.gyp -newer build/Release/torch_addon.node 2>/dev/null | head -1)" ]; then
  echo "[setup] building the libtorch addon"
  node scripts/build-native.cjs >/tmp/patch-diffusion-native-build.log 2>&1 || { tail -40 /tmp/patch-diffusion-native-build.log; exit 1; }
fi
echo "[setup] compiling TypeScript"
npx tsc -p .
echo "[setup] ready"
