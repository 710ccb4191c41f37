// Locates libtorch for the native build, the way tch-rs does:
//   1. $LIBTORCH (a directory with include/ and lib/, e.g. an unpacked libtorch zip),
//   2. the PyTorch wheel in the project's own virtual environment (.venv, which
//      scripts/setup.sh makes), then the `torch` package of python3/python on
//      the PATH (a wheel carries a CUDA or CPU libtorch); LIBTORCH_USE_PYTORCH=0
//      skips both,
//   3. Debian's libtorch-dev under /usr.
// Prints one field for binding.gyp: `include`, `libdir`, `libs`, `defines` or `describe`.
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
const glooInclude = [process.env.GLOO_INCLUDE, '/usr/include'].find((d) => d && fs.existsSync(path.join(d, 'gloo/rendezvous/store.h'))) ?? null;
const field = process.argv[2];
if (field === 'include') console.log([...lt.include, ...(glooInclude && glooInclude !== '/usr/include' ? [glooInclude] : [])].join(' '));
else if (field === 'libdir') console.log(lt.libdir);
else if (field === 'libs') console.log(['-ltorch', '-ltorch_cpu', '-lc10', ...(hasCuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])].join(' '));
else if (field === 'defines') {
  const defs = [];
  if (lt.cxx11abi !== null) defs.push(`_GLIBCXX_USE_CXX11_ABI=${lt.cxx11abi ? 1 : 0}`);
  if (hasCuda) defs.push('PD_WITH_CUDA=1');
  // Gloo (multi-process training): neither libtorch ships gloo's headers;
  // Debian's libgloo-dev has them (setup.sh installs it). Without them the
  // addon builds without distributed training and says so when asked for it.
  if (glooInclude) defs.push('USE_C10D_GLOO=1', 'PD_WITH_GLOO=1');
  console.log(defs.join(' ') || 'PD_NO_EXTRA_DEFINES=1');
} else console.log(`libtorch: ${lt.source}; lib ${lt.libdir}; cuda ${hasCuda ? 'yes' : 'no'}; gloo ${glooInclude ? 'yes' : 'no'}`);
