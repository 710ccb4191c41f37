// The browser's copy of libtorch's CPU generator (src/web/torch-generator.ts)
// against libtorch itself: the same seed gives the same noise (to ~1e-6: the
// transcendental functions may round differently) and the same integers, in
// the order a sampler draws them (latents, then a class).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MersenneTwister, TorchGenerator } from '../src/web/torch-generator.js';
import { Generator } from '../src/tensor/index.js';
import { SeedGenerators } from '../src/diffusion/sampler.js';

test('mt19937 matches the C++ standard\'s check value (the 10000th output of seed 5489 is 4123659995)', () => {
  const mt = new MersenneTwister(5489);
  let v = 0;
  for (let i = 0; i < 10000; i++) v = mt.next();
  assert.equal(v, 4123659995);
});

for (const seed of [0, 7, 123456789, 2 ** 32 + 5]) {
  test(`seed ${seed}: randn of 16, 17, 48 and 3·32·32 values and randint equal libtorch's`, () => {
    const js = new TorchGenerator(seed);
    const lt = new Generator(seed % 2 ** 32);
    for (const n of [16, 17, 48, 3 * 32 * 32]) {
      const a = js.randn(n);
      const t = lt.randn([n]);
      const b = t.data() as Float32Array;
      t.dispose();
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst < 1e-5, `n = ${n}: differs by ${worst}`);
      const r = lt.randint(0, 10, []);
      assert.equal(js.randint(10), r.item());
      r.dispose();
    }
  });
}

test('a page drawing latents then a class per seed gets generate\'s draws', () => {
  const seeds = [3, 1000];
  const node = new SeedGenerators(seeds);
  const latents = node.randn([3, 8, 8]);
  const classes = node.randint(10);
  const all = latents.data() as Float32Array;
  seeds.forEach((seed, k) => {
    const g = new TorchGenerator(seed);
    const mine = g.randn(3 * 8 * 8);
    for (let i = 0; i < mine.length; i++) assert.ok(Math.abs(mine[i]! - all[k * 192 + i]!) < 1e-5);
    assert.equal(g.randint(10), classes[k]);
  });
  latents.dispose();
});

test('sizes below 16 are refused (torch takes another path there)', () => {
  assert.throws(() => new TorchGenerator(0).randn(8), /16 or more values, got 8/);
});
