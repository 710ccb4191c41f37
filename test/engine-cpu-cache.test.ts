// The caching CPU allocator (native/cpu_allocator.cc): a freed block of 64 KiB
// or more is reused by the next request of its size class (or up to twice
// smaller), reused memory holds the new tensor's values, the idle cache stays
// under its cap, and PD_CPU_CACHE_MB=0 turns it off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuCacheStats, full, ones, zeros } from '../src/tensor/index.js';

const engine = fileURLToPath(new URL('../src/tensor/index.js', import.meta.url));
const MiB = 1 << 20;

/** cpuCacheStats() after `body` runs in a fresh process with PD_CPU_CACHE_MB = `cacheMb`, and what it wrote to stderr. */
function statsInChild(cacheMb: string, body = '') {
  const script = `const m = await import(${JSON.stringify(engine)}); ${body}; process.stdout.write(JSON.stringify(m.cpuCacheStats()));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, PD_CPU_CACHE_MB: cacheMb }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { ...(JSON.parse(r.stdout) as ReturnType<typeof cpuCacheStats>), stderr: r.stderr };
}

describe('caching CPU allocator', () => {
  const enabled = cpuCacheStats().enabled;
  const skip = !enabled && 'the cache is off (PD_CPU_CACHE_MB=0)';

  it('reuses a freed block for the next tensor of the same size', { skip }, () => {
    const before = cpuCacheStats();
    const a = ones([MiB / 4]); // 1 MiB of float32
    a.dispose();
    const idle = cpuCacheStats();
    assert.ok(idle.cachedBytes >= before.cachedBytes + MiB, 'the freed block is held for reuse');
    const b = zeros([MiB / 4]);
    const after = cpuCacheStats();
    assert.equal(after.hits, idle.hits + 1, 'the second tensor came from the cache');
    assert.ok(after.cachedBytes <= idle.cachedBytes - MiB, 'and left the cache');
    b.dispose();
  });

  it('a reused block holds the new tensor’s values, not the old ones', { skip }, () => {
    for (const size of [MiB / 4, (3 * MiB) / 8, MiB]) {
      const old = full([size], 7);
      old.dispose();
      const z = zeros([size]);
      const values = z.data() as Float32Array;
      assert.ok(values.every((v) => v === 0), `zeros of ${size} elements are zeros`);
      z.dispose();
    }
  });

  it('takes a cached block up to twice the request, not larger', { skip }, () => {
    ones([MiB / 2]).dispose(); // a 2 MiB block in the cache
    const s0 = cpuCacheStats();
    const half = ones([MiB / 4 + 1024]); // just over 1 MiB: the 2 MiB block is within 2×
    assert.equal(cpuCacheStats().hits, s0.hits + 1);
    half.dispose();
    ones([4 * MiB]).dispose(); // a 16 MiB block
    const s1 = cpuCacheStats();
    const small = ones([MiB / 4]); // 1 MiB: must not take the 16 MiB block
    const s2 = cpuCacheStats();
    assert.ok(s2.cachedBytes >= s1.cachedBytes - 2 * MiB, 'the 16 MiB block stayed in the cache');
    small.dispose();
  });

  it('PD_CPU_CACHE_MB caps the idle cache, and 0 turns it off', { skip }, () => {
    const capped = statsInChild('1', 'm.ones([1 << 20]).dispose()'); // a 4 MiB block against a 1 MiB cap
    assert.equal(capped.enabled, true);
    assert.equal(capped.capBytes, MiB);
    assert.equal(capped.cachedBytes, 0, 'a block over the cap goes back to the C library');
    const off = statsInChild('0', 'm.ones([1 << 20]).dispose()');
    assert.equal(off.enabled, false);
    assert.equal(off.hits + off.misses, 0);
  });

  it('a PD_CPU_CACHE_MB that is not a number is named on stderr and the default kept', { skip }, () => {
    const bad = statsInChild('2GB');
    assert.match(bad.stderr, /PD_CPU_CACHE_MB='2GB' is not a whole number of MiB/);
    assert.equal(bad.capBytes, 2048 * MiB);
  });
});
