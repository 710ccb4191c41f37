#!/usr/bin/env bash
# The package as a user gets it (CI runs this on both engines): packs the
# repository, installs the tarball into fresh projects with none of our
# devDependencies, compiles examples/*.ts against it under `strict` (our
# .d.ts files included: skipLibCheck off) and runs them: a tiny training run
# and four samples; training with progress events, stopped, resumed and
# sampled into memory; an evaluation. Two ways in:
#   A: npm install <tgz>, then `npx patch-diffusion setup`;
#   B: npm install --ignore-scripts <tgz> (pnpm >= 10, bun, strict npm set-ups):
#      --help, info and `import` work without the addon; then setup.
# Prints the time and disk of each step.
#
#   bash scripts/package-check.sh [wheel|debian]
# wheel (default): the engine is PyTorch's CPU wheel that setup fetches into
#   the per-user cache, with the prebuilt addon the tarball ships;
# debian: Debian's libtorch-dev (already installed); the install hook finds it
#   and compiles the addon with npm's node-gyp.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE="${1:-wheel}"
case "$ENGINE" in wheel|debian) ;; *) echo "usage: package-check.sh [wheel|debian]" >&2; exit 2;; esac
repo="$PWD"
work="$(mktemp -d /tmp/pd-package.XXXXXX)"
trap 'rm -rf "$work"' EXIT
ts_version="$(node -p "require('./package.json').devDependencies.typescript")"
types_version="$(node -p "require('./package.json').devDependencies['@types/node']")"
secs() { echo $(( $(date +%s) - $1 )); }
say() { echo "[package-check] $*"; }

t=$(date +%s)
npm pack --silent --pack-destination "$work" >/dev/null
tgz="$(ls "$work"/patch-diffusion-*.tgz)"
say "packed $(basename "$tgz"): $(du -h "$tgz" | cut -f1), $(tar tzf "$tgz" | wc -l) files, $(secs "$t") s"
listing="$(tar tzf "$tgz")"
grep -qx 'package/dist/src/index.js' <<<"$listing" || { say "the tarball has no dist/src/index.js"; exit 1; }
grep -qx 'package/LICENSE' <<<"$listing" || { say "the tarball has no LICENSE"; exit 1; }
if grep -E '\.map$|scripts/(gpu-check|pack-for-device|quickstart|setup)|^package/(test|bench|dist/test|dist/bench)/' <<<"$listing"; then say "the tarball ships files of ours (above)"; exit 1; fi
grep prebuilds/ <<<"$listing" | sed 's/^/[package-check]   /' || say "  (no prebuilt addon in the tarball)"

new_project() {
  mkdir -p "$1"
  printf '{ "name": "%s", "private": true, "type": "module" }\n' "$(basename "$1")" > "$1/package.json"
}
engine_env=()
# The wheel engine by name: on a machine that also has Debian's libtorch-dev, the install hook may
# compile against that one first, and `setup --engine wheel` must then replace it with the prebuilt.
setup_args=(--engine wheel)
if [ "$ENGINE" = debian ]; then engine_env=(LIBTORCH_USE_PYTORCH=0); setup_args=(--engine debian); fi

# --- A: npm install (the install hook), setup, the example under strict -----------------------
a="$work/a"; new_project "$a"; cd "$a"
t=$(date +%s)
env "${engine_env[@]}" npm install --no-audit --no-fund --foreground-scripts "$tgz" 2>&1 | grep -v '^npm warn' | sed 's/^/    /'
say "A: npm install <tgz>: $(secs "$t") s, node_modules $(du -sh node_modules | cut -f1)"
t=$(date +%s)
env "${engine_env[@]}" npx --no-install patch-diffusion setup "${setup_args[@]}"
say "A: npx patch-diffusion setup: $(secs "$t") s; per-user cache $(du -sh "${PATCH_DIFFUSION_CACHE:-$HOME/.cache/patch-diffusion}" 2>/dev/null | cut -f1)"
t=$(date +%s)
env "${engine_env[@]}" npx --no-install patch-diffusion setup "${setup_args[@]}" --quiet
say "A: setup again (nothing to do): $(secs "$t") s"
npm install --no-audit --no-fund --silent "typescript@$ts_version" "@types/node@$types_version"
cp "$repo"/examples/*.ts .
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "strict": true, "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "types": ["node"], "skipLibCheck": false, "noEmitOnError": true } }
JSON
npx --no-install tsc -p .
say "A: examples/*.ts compile under strict against the package"
t=$(date +%s)
node train-and-sample.js "$a/runs" 2>"$a/stderr.txt"
if [ -s "$a/stderr.txt" ]; then say "A: the library wrote to stderr:"; head -20 "$a/stderr.txt"; exit 1; fi
say "A: the example ran in $(secs "$t") s with nothing on stderr"
# The README's library example (train with progress, stop, resume, sample into memory), then evaluate its run.
t=$(date +%s)
node quickstart.js 2>"$a/stderr.txt" | tee "$a/quickstart.txt"
if [ -s "$a/stderr.txt" ]; then say "A: the library wrote to stderr:"; head -20 "$a/stderr.txt"; exit 1; fi
grep -q '^stopped at .* resumed to ' "$a/quickstart.txt"
ls "$a"/runs/*/samples/00000[0-3].png >/dev/null
node evaluate.js "$(ls -d "$a"/runs/*/ | tail -n 1)" 2>"$a/stderr.txt"
if [ -s "$a/stderr.txt" ]; then say "A: the library wrote to stderr:"; head -20 "$a/stderr.txt"; exit 1; fi
say "A: examples/quickstart.ts (progress, stop, resume, sample) and evaluate.ts ran in $(secs "$t") s"

# --- B: npm install --ignore-scripts, then setup ---------------------------------------------
b="$work/b"; new_project "$b"; cd "$b"
t=$(date +%s)
npm install --no-audit --no-fund --silent --ignore-scripts "$tgz"
say "B: npm install --ignore-scripts <tgz>: $(secs "$t") s"
npx --no-install patch-diffusion --help >/dev/null
npx --no-install patch-diffusion info | tee "$b/info.txt"
grep -q 'engine: not set up' "$b/info.txt"
node -e "import('patch-diffusion').then((m) => { if (typeof m.train !== 'function') process.exit(1); })"
node -e "import('patch-diffusion/web').then((m) => { if (typeof m.webSample !== 'function') process.exit(1); })"
say "B: --help, info, import 'patch-diffusion' and 'patch-diffusion/web' work before setup"
t=$(date +%s)
env "${engine_env[@]}" npx --no-install patch-diffusion setup "${setup_args[@]}"
say "B: npx patch-diffusion setup: $(secs "$t") s"
cp "$a/train-and-sample.js" .
node train-and-sample.js "$b/runs" 2>"$b/stderr.txt"
if [ -s "$b/stderr.txt" ]; then say "B: the library wrote to stderr:"; head -20 "$b/stderr.txt"; exit 1; fi
say "B: the example ran"
say "passed ($ENGINE)"
