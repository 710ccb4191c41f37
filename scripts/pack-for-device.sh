#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no Node and
# no network: .device/ (git-ignored; the device tool carries it with
# `carry: [".device"]`), within the 64 MiB the working tree may take there.
#
#   bash scripts/pack-for-device.sh      (after setup.sh: needs dist/ and node_modules)
#
#   .device/node.xz      this machine's Node binary, xz-compressed (Node has no
#                        shared-library dependencies beyond glibc and libstdc++)
#   .device/pack.tar.xz  dist/ (compiled JS: src, test, bench), the npm packages
#                        the CLI and node-gyp need (no TypeScript), Node's N-API
#                        headers for node-gyp, the reference vectors
#                        (shared/reference), the official Patch Diffusion code
#                        for the peer benchmark, Fashion-MNIST 5k and emoji dataset zips,
#                        and CUDA 13.0 runtime headers (used only where the
#                        device's PyTorch has none)
#   .device/MANIFEST     what is in it and how big
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=.device
mkdir -p "$OUTDIR"
STAGE=$(mktemp -d /tmp/pd-pack.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
[ -d dist/src ] || { echo "[pack] dist/ is missing: run npx tsc -p . first" >&2; exit 1; }

# 1. Node, compressed once per Node version (xz -6 takes about a minute on 2 cores).
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_VERSION=$(node --version)
if [ ! -f "$OUTDIR/node.xz" ] || [ "$(cat "$OUTDIR/node.version" 2>/dev/null)" != "$NODE_VERSION" ]; then
  echo "[pack] compressing $NODE_BIN ($NODE_VERSION)"
  # Stripped of its static symbols and debug info (the dynamic symbols N-API addons bind to stay): 2 MB less packed.
  if command -v strip >/dev/null 2>&1 && strip -o "$STAGE/node" "$NODE_BIN" 2>/dev/null; then NODE_SRC="$STAGE/node"; else NODE_SRC="$NODE_BIN"; fi
  xz -T0 -6 -c "$NODE_SRC" > "$OUTDIR/node.xz.partial" && mv "$OUTDIR/node.xz.partial" "$OUTDIR/node.xz"
  echo "$NODE_VERSION" > "$OUTDIR/node.version"
fi

# 2. npm packages: the production dependencies and node-gyp's own tree.
P="$STAGE/pd"
mkdir -p "$P/node_modules"
npm ls --all --json 2>/dev/null | node -e '
  const tree = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const keep = new Set();
  const walk = (name, node) => { if (!node || keep.has(name)) return; keep.add(name); for (const [k, v] of Object.entries(node.dependencies || {})) walk(k, v); };
  const pkg = require(process.argv[1]);
  for (const name of [...Object.keys(pkg.dependencies), "node-gyp"]) walk(name, tree.dependencies[name]);
  console.log([...keep].sort().join("\n"));
' "$ROOT/package.json" > "$STAGE/packages.txt"
# onnxruntime-web (148 MB: the browser page's WASM builds) is for `serve` alone, which the device does not run.
# Type declarations (@types/*) are for the compiler only.
sed -i -e '/^onnxruntime-web$/d' -e '/^@types\//d' "$STAGE/packages.txt"
while read -r name; do
  src=$(readlink -f node_modules)/$name
  if [ ! -d "$src" ]; then  # an optional dependency for another platform (sharp's), or a missing install
    grep -q "\"$name\"" package.json && { echo "[pack] $name is not in node_modules (npm ci?)" >&2; exit 1; }
    continue
  fi
  mkdir -p "$P/node_modules/$(dirname "$name")"
  cp -r "$src" "$P/node_modules/$name"
done < "$STAGE/packages.txt"

# 3. Node's headers for node-gyp (N-API only: the addon uses nothing else).
NODEDIR=/usr/include/node
[ -f "$NODEDIR/node_api.h" ] || NODEDIR=$(dirname "$NODE_BIN")/../include/node
mkdir -p "$P/nodedir/include/node"
for f in common.gypi config.gypi node_api.h node_api_types.h js_native_api.h js_native_api_types.h node_version.h; do
  [ -f "$NODEDIR/$f" ] && cp "$NODEDIR/$f" "$P/nodedir/include/node/"
done

# 4. The compiled JS, the reference vectors, the official code.
cp -r dist "$P/dist"
REF="${PD_REFERENCE_DIR:-$ROOT/../shared/reference}"
[ -f "$REF/cases.json" ] || REF=/work/shared/reference
[ -f "$REF/cases.json" ] && cp -r "$REF" "$P/reference" || echo "[pack] no reference vectors found: the parity tests will skip on the device" >&2
MIRROR="${PD_OFFICIAL_GIT:-/work/.mirror/Zhendong-Wang+Patch-Diffusion/repo}"
if [ -d "$MIRROR" ]; then
  mkdir -p "$P/official"
  git --git-dir="$MIRROR" archive HEAD -- dnnlib torch_utils training generate.py | tar -x -C "$P/official"
else
  echo "[pack] no official checkout ($MIRROR): the peer benchmark will be skipped on the device" >&2
fi

# 5. Training data: the fixed Fashion-MNIST 5k subset as an EDM-style zip.
if node dist/src/cli/main.js dataset --source fashion-mnist-5k --dest "$P/fashion-mnist-5k.zip" >/dev/null 2>"$STAGE/dataset.err"; then :; else
  echo "[pack] could not write the Fashion-MNIST zip: $(tail -1 "$STAGE/dataset.err")" >&2
fi

# The 64×64 colour set, for the GPU's emoji runs (the zip's PNGs are stored uncompressed: 45 MiB, about 7 MiB in the xz pack).
if node dist/src/cli/main.js dataset --source emoji --dest "$P/emoji.zip" >/dev/null 2>"$STAGE/emoji.err"; then rm -f "$P/emoji.zip.NOTICE"; else
  echo "[pack] could not write the emoji zip (the GPU's emoji runs will be skipped): $(tail -1 "$STAGE/emoji.err")" >&2
fi

# 6. CUDA 13.0 runtime headers (cuda_runtime_api.h and crt/), for a device
# whose PyTorch lacks them (the nvidia-cuda-crt wheel is not one of torch's dependencies).
CUDA_INC="${PD_CUDA_TORCH_DIR:-$HOME/.cache/patch-diffusion/torch-2.14.1-cu13}/nvidia/cu13/include"
[ -f "$CUDA_INC/crt/host_defines.h" ] || CUDA_INC=/usr/local/cuda/include
if [ -f "$CUDA_INC/crt/host_defines.h" ]; then
  mkdir -p "$P/cuda13/include"
  (cd "$CUDA_INC" && tar -c --exclude=cccl --exclude='cublas*' --exclude='cufft*' --exclude='curand*' --exclude='cusparse*' --exclude='cusolver*' --exclude='nvblas*' --exclude='cupti*' --exclude='nvrtc*' --exclude='nvJitLink*' --exclude='cufile*' .) | tar -x -C "$P/cuda13/include"
fi

git rev-parse HEAD > "$P/COMMIT" 2>/dev/null || true
echo "[pack] compressing the pack"
tar -C "$STAGE" -c pd | xz -T0 -6 > "$OUTDIR/pack.tar.xz.partial" && mv "$OUTDIR/pack.tar.xz.partial" "$OUTDIR/pack.tar.xz"
{
  echo "node $NODE_VERSION: $(du -h "$OUTDIR/node.xz" | cut -f1) compressed"
  echo "pack: $(du -h "$OUTDIR/pack.tar.xz" | cut -f1) compressed; unpacked:"
  (cd "$P" && du -sh -- * | sed 's/^/  /')
  echo "npm packages: $(wc -l < "$STAGE/packages.txt")"
} > "$OUTDIR/MANIFEST"
cat "$OUTDIR/MANIFEST"
tracked=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total=$(( $(du -cb "$OUTDIR"/node.xz "$OUTDIR"/pack.tar.xz | tail -1 | cut -f1) + tracked ))
echo "[pack] carried in all (tracked files + .device): $((total / 1024 / 1024)) MiB of the 64 MiB limit"
[ "$total" -lt $((64 * 1024 * 1024)) ] || { echo "[pack] over the device tool's 64 MiB" >&2; exit 1; }
