// Locates libtorch for the native build, the way tch-rs does:
//   1. $LIBTORCH (a directory with include/ and lib/, e.g. an unpacked libtorch
//      zip, or a wheel's torch/ folder): always wins,
//   2. a PyTorch wheel (it carries a CPU or CUDA libtorch), in this order: the
//      package's own virtual environment (.venv, which scripts/setup.sh makes
//      in a clone of the repository), the project's (.venv in the folder npm
//      was run from), the one `patch-diffusion setup` makes in the per-user
//      cache ($PATCH_DIFFUSION_CACHE, else $XDG_CACHE_HOME/patch-diffusion, else
//      ~/.cache/patch-diffusion: venv/), then python3/python on the PATH;
//      LIBTORCH_USE_PYTORCH=0 skips all of them,
//   3. Debian's libtorch-dev under /usr.
// Prints one field for binding.gyp: `include`, `libdir`, `rpath`, `libs`,
// `defines` or `describe`; `json` prints what was found (or {"found": false}
// and why) for the install script and `patch-diffusion setup`.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

/** The per-user cache of patch-diffusion (libtorch wheels, compiled addons, data sets): src/util/cache-dir.ts's rule, which binding.gyp cannot import. */
function cacheDir() {
  if (process.env.PATCH_DIFFUSION_CACHE) return path.resolve(process.env.PATCH_DIFFUSION_CACHE);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'patch-diffusion');
}

function fromDir(root, source) {
  const include = [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')];
  const libdir = path.join(root, 'lib');
  if (!fs.existsSync(path.join(include[0], 'ATen/ATen.h'))) return null;
  return { source, root, include, libdir, cxx11abi: null, version: null };
}

/** The Python interpreters whose `torch` may be libtorch, most specific first. */
function pythons() {
  const venvs = [path.join(__dirname, '..', '.venv')];
  if (process.env.INIT_CWD) venvs.push(path.join(process.env.INIT_CWD, '.venv'));
  venvs.push(path.join(process.cwd(), '.venv'), path.join(cacheDir(), 'venv'));
  const found = [...new Set(venvs.map((v) => path.resolve(v, 'bin', 'python')))].filter((p) => fs.existsSync(p));
  return [...found, 'python3', 'python'];
}

function fromPython() {
  if (process.env.LIBTORCH_USE_PYTORCH === '0') return null;
  for (const py of pythons()) {
    try {
      const out = execFileSync(py, ['-c',
        'import torch, os; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__)'],
        { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 }).toString().trim().split('\n');
      const found = fromDir(out[0], `python torch at ${out[0]}`);
      if (found) { found.cxx11abi = out[1] === '1'; found.version = out[2] || null; return found; }
    } catch { /* no torch in this interpreter */ }
  }
  return null;
}

function fromDebian() {
  if (!fs.existsSync('/usr/include/ATen/ATen.h')) return null;
  return {
    source: 'Debian libtorch-dev (/usr)',
    root: '/usr',
    version: null,
    include: ['/usr/include/torch/csrc/api/include'],
    libdir: '/usr/lib/' + (fs.existsSync('/usr/lib/x86_64-linux-gnu/libtorch.so') ? 'x86_64-linux-gnu' : 'aarch64-linux-gnu'),
    cxx11abi: true,
  };
}

function locate() {
  if (process.env.LIBTORCH) {
    const found = fromDir(process.env.LIBTORCH, `$LIBTORCH=${process.env.LIBTORCH}`);
    if (!found) fail(`LIBTORCH=${process.env.LIBTORCH} has no include/ATen/ATen.h`);
    return found;
  }
  return fromPython() || fromDebian() || fail('no libtorch found');
}

function fail(why) {
  if (process.argv[2] === 'json') {
    console.log(JSON.stringify({ found: false, why }));
    process.exit(0);
  }
  process.stderr.write(`\n[patch-diffusion] ${why}.\n` +
    'Install one of:\n' +
    '  - Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread\n' +
    '  - PyTorch\'s wheel: npx patch-diffusion setup   (pip install torch into the per-user cache), or pip install torch\n' +
    '  - an unpacked libtorch zip, then export LIBTORCH=/path/to/libtorch\n\n');
  process.exit(1);
}

/** libtorch's version from its headers ("2.13.0"), whichever way it was found. */
function headerVersion(found) {
  const files = found.include.flatMap((inc) => [path.join(inc, 'torch/headeronly/version.h'), path.join(inc, 'torch/version.h')]);
  for (const file of files) {
    let text;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    const part = (name) => new RegExp(`#define\\s+TORCH_VERSION_${name}\\s+(\\d+)`).exec(text)?.[1];
    const [major, minor, patch] = [part('MAJOR'), part('MINOR'), part('PATCH')];
    if (major !== undefined && minor !== undefined && patch !== undefined) return `${major}.${minor}.${patch}`;
  }
  return null;
}

const lt = locate();
const hasCuda = fs.existsSync(path.join(lt.libdir, 'libtorch_cuda.so'));

// A CUDA libtorch from a wheel links the CUDA libraries of the nvidia-* wheels
// installed beside it (site-packages/nvidia/<name>/lib, which libtorch's own
// RUNPATH names as $ORIGIN/../../nvidia/...). The addon gets an rpath to each
// of them too, so it loads without LD_LIBRARY_PATH wherever they are, and their
// include/ folders (cuBLAS, cuSOLVER, NCCL, ...) for the CUDA headers it uses.
function nvidiaDirs(sub) {
  if (!hasCuda) return [];
  const nvidia = path.join(lt.libdir, '..', '..', 'nvidia');
  let names = [];
  try { names = fs.readdirSync(nvidia).sort(); } catch { return []; }
  return names.map((n) => path.join(nvidia, n, sub)).filter((d) => fs.existsSync(d)).map((d) => path.resolve(d));
}
const nvidiaLibs = nvidiaDirs('lib');
const nvidiaIncludes = nvidiaDirs('include');

// The CUDA runtime's headers (cuda_runtime_api.h and the crt/ headers it
// includes), needed for the device queries, the GPU memory statistics and
// NCCL: the nvidia wheels (cuda-runtime with cuda-crt), then $CUDA_HOME /
// $CUDA_PATH, then /usr/local/cuda. Without them a CUDA build still compiles,
// with the basic CUDA support only (device count, no names or memory figures).
function cudaRuntimeInclude() {
  if (!hasCuda) return null;
  const candidates = [...nvidiaIncludes];
  for (const v of ['CUDA_HOME', 'CUDA_PATH']) if (process.env[v]) candidates.push(path.join(process.env[v], 'include'));
  candidates.push('/usr/local/cuda/include');
  return candidates.find((d) => fs.existsSync(path.join(d, 'cuda_runtime_api.h')) && fs.existsSync(path.join(d, 'crt/host_defines.h'))) ?? null;
}
// The runtime library the addon's own CUDA calls link to (the one libc10_cuda
// loads: the nvidia wheel's, else the toolkit's).
function cudaRuntimeLibrary() {
  if (!hasCuda) return null;
  const dirs = [...nvidiaLibs];
  for (const v of ['CUDA_HOME', 'CUDA_PATH']) if (process.env[v]) dirs.push(path.join(process.env[v], 'lib64'), path.join(process.env[v], 'lib'));
  dirs.push('/usr/local/cuda/lib64', '/usr/local/cuda/lib');
  for (const d of dirs) {
    let names = [];
    try { names = fs.readdirSync(d); } catch { continue; }
    const lib = names.filter((n) => /^libcudart\.so\.\d+$/.test(n)).sort()[0];
    if (lib) return path.join(d, lib);
  }
  return null;
}
const cudartLib = cudaRuntimeLibrary();
const cudaInclude = cudartLib ? cudaRuntimeInclude() : null;
// CCCL's headers (nv/target, which cuda_fp16.h includes): beside the runtime's
// (the nvidia-cuda-cccl wheel), or in include/cccl (the CUDA 13 toolkit).
const cudaIncludes = !cudaInclude ? [] : [...new Set([...nvidiaIncludes, cudaInclude])].flatMap((d) =>
  !fs.existsSync(path.join(d, 'nv/target')) && fs.existsSync(path.join(d, 'cccl/nv/target')) ? [d, path.join(d, 'cccl')] : [d]);
// NCCL (multi-GPU training): c10d's ProcessGroupNCCL, in libtorch_cuda, with
// nccl.h (the nvidia-nccl wheel) and the CUDA headers ATen's CUDA context includes.
const hasHeader = (h) => cudaIncludes.some((d) => fs.existsSync(path.join(d, h)));
const ncclHeader = path.join(lt.include[0], 'torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp');
const hasNccl = cudaInclude !== null && fs.existsSync(ncclHeader) && ['nccl.h', 'cublas_v2.h', 'cusparse.h', 'cusolverDn.h', 'nv/target'].every(hasHeader);

const glooInclude = [process.env.GLOO_INCLUDE, '/usr/include'].find((d) => d && fs.existsSync(path.join(d, 'gloo/rendezvous/store.h'))) ?? null;
const field = process.argv[2];
if (field === 'include') console.log([...lt.include, ...(glooInclude && glooInclude !== '/usr/include' ? [glooInclude] : []), ...cudaIncludes].join(' '));
else if (field === 'libdir') console.log(lt.libdir);
// $ORIGIN/libtorch-lib first: a link beside the addon that the set-up points at the libtorch in use, so a
// copied node_modules, a prebuilt addon or a moved libtorch is mended by relinking, not by compiling. (gyp
// splits this output as a shell would, so the single quotes keep the rest whole; $$ is make's escape for $,
// and the backslash keeps the link command's shell from expanding $ORIGIN.)
else if (field === 'rpath') console.log([`'-Wl,-rpath,\\$$ORIGIN/libtorch-lib'`, ...[...new Set([lt.libdir, ...nvidiaLibs, ...(cudaInclude ? [path.dirname(cudartLib)] : [])])].map((d) => `-Wl,-rpath,${d}`)].join(' '));
else if (field === 'libs') console.log(['-ltorch', '-ltorch_cpu', '-lc10', ...(hasCuda ? ['-ltorch_cuda', '-lc10_cuda'] : []), ...(cudaInclude ? [cudartLib] : [])].join(' '));
else if (field === 'defines') {
  const defs = [];
  if (lt.cxx11abi !== null) defs.push(`_GLIBCXX_USE_CXX11_ABI=${lt.cxx11abi ? 1 : 0}`);
  if (hasCuda) defs.push('PD_WITH_CUDA=1');
  if (cudaInclude) defs.push('PD_WITH_CUDA_RUNTIME=1');
  if (hasNccl) defs.push('USE_C10D_NCCL=1', 'PD_WITH_NCCL=1');
  // Gloo (multi-process training): neither libtorch ships gloo's headers;
  // Debian's libgloo-dev has them (setup.sh installs it). Without them the
  // addon builds without distributed training and says so when asked for it.
  if (glooInclude) defs.push('USE_C10D_GLOO=1', 'PD_WITH_GLOO=1');
  console.log(defs.join(' ') || 'PD_NO_EXTRA_DEFINES=1');
} else if (field === 'json') {
  console.log(JSON.stringify({
    found: true, source: lt.source, root: lt.root, libdir: lt.libdir, version: headerVersion(lt), pythonVersion: lt.version, cxx11abi: lt.cxx11abi,
    cuda: hasCuda, cudaRuntime: cudaInclude !== null, nccl: hasNccl, gloo: glooInclude !== null,
  }));
} else {
  const cuda = !hasCuda ? 'no' : `yes (CUDA runtime ${cudaInclude ? `${cudartLib}, headers ${cudaInclude}` : 'headers or library not found: basic CUDA support only'}; nccl ${hasNccl ? 'yes' : 'no'})`;
  console.log(`libtorch: ${lt.source}; lib ${lt.libdir}; cuda ${cuda}; gloo ${glooInclude ? 'yes' : 'no'}`);
}
