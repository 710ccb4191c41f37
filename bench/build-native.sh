#!/usr/bin/env bash
# Builds bench/native/conv_stack (the C++ twin of bench/train-step.ts's network)
# against the same libtorch the addon uses (scripts/find-libtorch.cjs: $LIBTORCH,
# the Python torch package, or Debian's /usr). Takes about 30 s: torch/torch.h is heavy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/native/build"
mkdir -p "$out"

find_lt() { node "$root/scripts/find-libtorch.cjs" "$1" 2>/dev/null || true; }
includes="$(find_lt include)"; libdir="$(find_lt libdir)"; libs="$(find_lt libs)"; defines="$(find_lt defines)"
: "${includes:=/usr/include/torch/csrc/api/include}"
: "${libdir:=/usr/lib/x86_64-linux-gnu}"
: "${libs:=-ltorch -ltorch_cpu -lc10}"

flags=(-O2 -std=c++17 -Wno-deprecated-declarations -I/usr/include)
for d in $includes; do flags+=("-I$d"); done
for d in $defines; do flags+=("-D$d"); done

echo "[build-native] g++ ${flags[*]} conv_stack.cc -L$libdir $libs" >&2
g++ "${flags[@]}" "$here/native/conv_stack.cc" -o "$out/conv_stack.tmp" \
  -L"$libdir" -Wl,-rpath,"$libdir" -Wl,--no-as-needed $libs -Wl,--as-needed
mv "$out/conv_stack.tmp" "$out/conv_stack"
echo "[build-native] built $out/conv_stack" >&2
