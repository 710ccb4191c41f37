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
    assert.deepEqual(findLibtorch('libs', root).stdout.split(' '), ['-ltorch', '-ltorch_cpu', '-lc10', '-ltorch_cuda', '-lc10_cuda']);
    assert.match(findLibtorch('defines', root).stdout, /\bPD_WITH_CUDA=1\b/);
    assert.equal(findLibtorch('libdir', root).stdout, join(root, 'lib'));
    assert.deepEqual(findLibtorch('include', root).stdout.split(' '), [join(root, 'include'), join(root, 'include/torch/csrc/api/include')]);
    assert.match(findLibtorch('describe', root).stdout, /cuda yes/);
  });

  it('a CPU libtorch: no CUDA libraries, no CUDA define', () => {
    const root = fakeLibtorch(join(dir, 'cpu'), ['libtorch.so', 'libtorch_cpu.so', 'libc10.so']);
    assert.equal(findLibtorch('libs', root).stdout, '-ltorch -ltorch_cpu -lc10');
    assert.doesNotMatch(findLibtorch('defines', root).stdout, /CUDA/);
    assert.match(findLibtorch('describe', root).stdout, /cuda no/);
  });

  it('$LIBTORCH without libtorch headers fails with the path and how to install one', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const r = findLibtorch('include', empty);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(`LIBTORCH=${empty} has no include/ATen/ATen.h`), r.stderr);
    assert.match(r.stderr, /apt-get install libtorch-dev/);
    assert.match(r.stderr, /pip install torch/);
  });
});
