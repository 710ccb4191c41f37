// Thread pools: ATen's OpenMP pool follows setNumThreads; OpenBLAS's own pool
// is kept at one thread (its spinning workers took cores from the OpenMP team)
// unless the user set OPENBLAS_NUM_THREADS.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { blasThreads, getNumThreads, setNumThreads } from '../src/tensor/index.js';

const engine = fileURLToPath(new URL('../src/tensor/index.js', import.meta.url));

/** blasThreads() as a fresh process with `env` sees it at load. */
function blasThreadsInChild(env: NodeJS.ProcessEnv): number {
  const script = `const m = await import(${JSON.stringify(engine)}); m.setNumThreads(2); process.stdout.write(String(m.blasThreads()));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

describe('thread pools', () => {
  const hasOpenBlas = blasThreads() !== -1;

  it('setNumThreads sizes ATen’s pool and leaves OpenBLAS single-threaded', { skip: !hasOpenBlas && 'the BLAS here is not OpenBLAS' }, () => {
    const before = getNumThreads();
    try {
      setNumThreads(2);
      assert.equal(getNumThreads(), 2);
      assert.equal(blasThreads(), process.env.OPENBLAS_NUM_THREADS ? Number(process.env.OPENBLAS_NUM_THREADS) : 1);
    } finally {
      setNumThreads(before);
    }
  });

  it('OPENBLAS_NUM_THREADS, when set, is left as the user set it', { skip: !hasOpenBlas && 'the BLAS here is not OpenBLAS' }, () => {
    const { OPENBLAS_NUM_THREADS: _, ...unset } = process.env;
    assert.equal(blasThreadsInChild(unset), 1);
    assert.equal(blasThreadsInChild({ ...unset, OPENBLAS_NUM_THREADS: '2' }), 2);
  });
});
