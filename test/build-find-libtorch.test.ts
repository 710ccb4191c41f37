// scripts/find-libtorch.cjs decides what the addon is compiled and linked
// against. These cases build fake libtorch trees ($LIBTORCH, as an unpacked
// libtorch zip or a wheel's torch/ directory looks) and check the flags it
// hands binding.gyp: the CUDA libraries and define only when libtorch_cuda.so
// is there, and a clear error when $LIBTORCH holds no libtorch.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/find-libtorch.cjs', import.meta.url));

/**
 * The addon's first library folder: build/Release/libtorch-lib, a link the set-up points at the libtorch in use
 * (quoted for gyp's shell-like split, $$ for make, the backslash for the link command's shell).
 */
const ORIGIN_RPATH = "'-Wl,-rpath,\\$$ORIGIN/libtorch-lib'";

function findLibtorch(field: string, libtorch: string) {
  const r = spawnSync(process.execPath, [script, field], { env: { ...process.env, LIBTORCH: libtorch }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

function fakeLibtorch(root: string, libs: string[]): string {
  mkdirSync(join(root, 'include', 'ATen'), { recursive: true });
  writeFileSync(join(root, 'include', 'ATen', 'ATen.h'), '');
  mkdirSync(join(root, 'lib'), { recursive: true });
  for (const lib of libs) writeFileSync(join(root, 'lib', lib), '');
  return root;
}

describe('find-libtorch', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pd-find-libtorch-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a CUDA libtorch: links torch_cuda and c10_cuda and defines PD_WITH_CUDA', () => {
    const root = fakeLibtorch(join(dir, 'cuda'), ['libtorch.so', 'libtorch_cpu.so', 'libc10.so', 'libtorch_cuda.so', 'libc10_cuda.so']);
    // (then the CUDA runtime library where the machine has one)
    assert.deepEqual(findLibtorch('libs', root).stdout.split(' ').slice(0, 5), ['-ltorch', '-ltorch_cpu', '-lc10', '-ltorch_cuda', '-lc10_cuda']);
    assert.match(findLibtorch('defines', root).stdout, /\bPD_WITH_CUDA=1\b/);
    assert.equal(findLibtorch('libdir', root).stdout, join(root, 'lib'));
    // libtorch's own headers first; the CUDA runtime's follow where this machine has them (/usr/local/cuda).
    assert.deepEqual(findLibtorch('include', root).stdout.split(' ').slice(0, 2), [join(root, 'include'), join(root, 'include/torch/csrc/api/include')]);
    assert.match(findLibtorch('describe', root).stdout, /cuda yes/);
    assert.ok(findLibtorch('rpath', root).stdout.startsWith(`${ORIGIN_RPATH} -Wl,-rpath,${join(root, 'lib')}`));
  });

  it('a CUDA wheel: the nvidia-* wheels beside torch/ give rpaths, the CUDA runtime (headers and library) and NCCL', () => {
    // site-packages/torch (libtorch) and site-packages/nvidia/<name>/{lib,include}, as pip installs them.
    const site = join(dir, 'site');
    const root = fakeLibtorch(join(site, 'torch'), ['libtorch.so', 'libtorch_cpu.so', 'libc10.so', 'libtorch_cuda.so', 'libc10_cuda.so']);
    const files: Record<string, string[]> = {
      'nvidia/cu13/lib': ['libcudart.so.13', 'libcublas.so.13'],
      'nvidia/cu13/include': ['cuda_runtime_api.h', 'crt/host_defines.h', 'nv/target', 'cublas_v2.h', 'cusparse.h', 'cusolverDn.h'],
      'nvidia/nccl/lib': ['libnccl.so.2'],
      'nvidia/nccl/include': ['nccl.h'],
      'torch/include/torch/csrc/distributed/c10d': ['ProcessGroupNCCL.hpp'],
    };
    for (const [d, names] of Object.entries(files))
      for (const n of names) {
        mkdirSync(join(site, d, n, '..'), { recursive: true });
        writeFileSync(join(site, d, n), '');
      }
    assert.equal(findLibtorch('rpath', root).stdout,
      [ORIGIN_RPATH, ...[join(root, 'lib'), join(site, 'nvidia/cu13/lib'), join(site, 'nvidia/nccl/lib')].map((d) => `-Wl,-rpath,${d}`)].join(' '));
    const include = findLibtorch('include', root).stdout.split(' ');
    assert.ok(include.includes(join(site, 'nvidia/cu13/include')) && include.includes(join(site, 'nvidia/nccl/include')), include.join(' '));
    assert.equal(findLibtorch('libs', root).stdout.split(' ').at(-1), join(site, 'nvidia/cu13/lib/libcudart.so.13'));
    const defines = findLibtorch('defines', root).stdout.split(' ');
    for (const d of ['PD_WITH_CUDA=1', 'PD_WITH_CUDA_RUNTIME=1', 'USE_C10D_NCCL=1', 'PD_WITH_NCCL=1']) assert.ok(defines.includes(d), defines.join(' '));
    assert.match(findLibtorch('describe', root).stdout, /cuda yes \(CUDA runtime .*libcudart\.so\.13, headers .*nvidia\/cu13\/include; nccl yes\)/);
  });

  it('a CPU libtorch: no CUDA libraries, no CUDA define', () => {
    const root = fakeLibtorch(join(dir, 'cpu'), ['libtorch.so', 'libtorch_cpu.so', 'libc10.so']);
    assert.equal(findLibtorch('libs', root).stdout, '-ltorch -ltorch_cpu -lc10');
    assert.doesNotMatch(findLibtorch('defines', root).stdout, /CUDA|NCCL/);
    assert.equal(findLibtorch('rpath', root).stdout, `${ORIGIN_RPATH} -Wl,-rpath,${join(root, 'lib')}`);
    assert.match(findLibtorch('describe', root).stdout, /cuda no/);
  });

  it('$LIBTORCH without libtorch headers fails with the path and how to install one', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const r = findLibtorch('include', empty);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(`LIBTORCH=${empty} has no include/ATen/ATen.h`), r.stderr);
    assert.match(r.stderr, /apt-get install libtorch-dev/);
    assert.match(r.stderr, /npx patch-diffusion setup/);
    assert.match(r.stderr, /pip install torch/);
  });

  it('json: what the set-up reads (the version from the headers), and {found: false} with why instead of an exit', () => {
    const root = fakeLibtorch(join(dir, 'versioned'), ['libtorch.so', 'libtorch_cpu.so', 'libc10.so']);
    mkdirSync(join(root, 'include', 'torch', 'headeronly'), { recursive: true });
    writeFileSync(join(root, 'include', 'torch', 'headeronly', 'version.h'), '#define TORCH_VERSION_MAJOR 2\n#define TORCH_VERSION_MINOR 13\n#define TORCH_VERSION_PATCH 0\n');
    const found = JSON.parse(findLibtorch('json', root).stdout) as Record<string, unknown>;
    assert.deepEqual([found.found, found.root, found.libdir, found.version, found.cuda], [true, root, join(root, 'lib'), '2.13.0', false]);
    const missing = findLibtorch('json', join(dir, 'nowhere'));
    assert.equal(missing.status, 0);
    assert.deepEqual(JSON.parse(missing.stdout), { found: false, why: `LIBTORCH=${join(dir, 'nowhere')} has no include/ATen/ATen.h` });
  });
});
