// Locates libtorch for the native build, the way tch-rs does:
//   1. $LIBTORCH (a directory with include/ and lib/, e.g. an unpacked libtorch zip),
//   2. the PyTorch wheel in the project's own virtual environment (.venv, which
//      scripts/setup.sh makes), then the `torch` package of python3/python on
//      the PATH (a wheel carries a CUDA or CPU libtorch); LIBTORCH_USE_PYTORCH=0
//      skips both,
//   3. Debian's libtorch-dev under /usr.
// Prints one field for binding.gyp: `include`, `libdir`, `rpath`, `libs`, `defines` or `describe`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function fromDir(root, source) {
  const include = [path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')];
  const libdir = path.join(root, 'lib');
  if (!fs.existsSync(path.join(include[0], 'ATen/ATen.h'))) return null;
  return { source, include, libdir, cxx11abi: null };
}

function fromPython() {
  if (process.env.LIBTORCH_USE_PYTORCH === '0') return null;
  const venvPython = path.join(__dirname, '..', '.venv', 'bin', 'python');
  for (const py of [...(fs.existsSync(venvPython) ? [venvPython] : []), 'python3', 'python']) {
    try {
      const out = execFileSync(py, ['-c',
        'import torch, os; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'],
        { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 }).toString().trim().split('\n');
      const found = fromDir(out[0], `python torch at ${out[0]}`);
      if (found) { found.cxx11abi = out[1] === '1'; return found; }
    } catch { /* no torch in this interpreter */ }
  }
  return null;
}

function fromDebian() {
  if (!fs.existsSync('/usr/include/ATen/ATen.h')) return null;
  return {
    source: 'Debian libtorch-dev (/usr)',
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
  process.stderr.write(`\n[patch-diffusion] ${why}.\n` +
    'Install one of:\n' +
    '  - Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread\n' +
    '  - PyTorch (CPU or CUDA): pip install torch   (its wheel carries libtorch)\n' +
    '  - an unpacked libtorch zip, then export LIBTORCH=/path/to/libtorch\n\n');
  process.exit(1);
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
else if (field === 'rpath') console.log([...new Set([lt.libdir, ...nvidiaLibs, ...(cudaInclude ? [path.dirname(cudartLib)] : [])])].map((d) => `-Wl,-rpath,${d}`).join(' '));
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
} else {
  const cuda = !hasCuda ? 'no' : `yes (CUDA runtime ${cudaInclude ? `${cudartLib}, headers ${cudaInclude}` : 'headers or library not found: basic CUDA support only'}; nccl ${hasNccl ? 'yes' : 'no'})`;
  console.log(`libtorch: ${lt.source}; lib ${lt.libdir}; cuda ${cuda}; gloo ${glooInclude ? 'yes' : 'no'}`);
}
