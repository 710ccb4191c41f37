import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, scope, tensor } from '../src/tensor/index.js';
import { kernelInceptionDistance, polynomialMmd2Unbiased } from '../src/metrics/kid.js';

/** Direct O(n²) unbiased MMD² with k(x, y) = (xᵀy/d + 1)³, in plain JS. */
function directMmd2(x: number[][], y: number[][]): number {
  const d = x[0]!.length;
  const k = (a: number[], b: number[]) => (a.reduce((s, v, i) => s + v * b[i]!, 0) / d + 1) ** 3;
  const m = x.length;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < m; j++) {
      if (i !== j) {
        xx += k(x[i]!, x[j]!);
        yy += k(y[i]!, y[j]!);
      }
      xy += k(x[i]!, y[j]!);
    }
  return (xx + yy) / (m * (m - 1)) - (2 * xy) / (m * m);
}

test('unbiased polynomial MMD² equals a direct O(n²) computation', () => {
  scope(() => {
    const g = new Generator(7);
    const m = 23;
    const d = 5;
    const x = g.randn([m, d]).mul(1.5);
    const y = g.randn([m, d]).add(0.3);
    const rows = (t: typeof x) => {
      const v = t.double().toArray();
      return Array.from({ length: m }, (_, i) => v.slice(i * d, (i + 1) * d));
    };
    const expected = directMmd2(rows(x), rows(y));
    const got = polynomialMmd2Unbiased(x, y);
    assert.ok(Math.abs(got - expected) < 1e-9 * Math.max(1, Math.abs(expected)), `${got} vs ${expected}`);
    // Symmetric in its arguments.
    assert.ok(Math.abs(polynomialMmd2Unbiased(y, x) - got) < 1e-9);
  });
});

test('KID ≈ 0 for two samples of the same Gaussian, clearly positive for shifted means', () => {
  scope(() => {
    const g = new Generator(8);
    const d = 32;
    const n = 1500;
    const a = g.randn([n, d]);
    const b = g.randn([n, d]);
    const same = kernelInceptionDistance(a, b, { subsets: 30, subsetSize: 400, seed: 1 });
    assert.equal(same.values.length, 30);
    assert.equal(same.subsetSize, 400);
    assert.ok(Math.abs(same.mean) < 3 * same.std / Math.sqrt(same.subsets), `same distribution: ${same.mean} ± ${same.std}`);
    // Unbiased: individual subsets go negative as well as positive.
    assert.ok(same.values.some((v) => v < 0) && same.values.some((v) => v > 0));
    const shifted = kernelInceptionDistance(a, g.randn([n, d]).add(0.25), { subsets: 30, subsetSize: 400, seed: 1 });
    assert.ok(shifted.mean > 10 * shifted.std && shifted.mean > 20 * Math.abs(same.mean), `shifted: ${shifted.mean} ± ${shifted.std}`);
    const further = kernelInceptionDistance(a, g.randn([n, d]).add(0.5), { subsets: 30, subsetSize: 400, seed: 1 });
    assert.ok(further.mean > shifted.mean);
  });
});

test('KID is reproducible from its generator, caps the subset size, and checks shapes', () => {
  scope(() => {
    const g = new Generator(9);
    const a = g.randn([300, 8]);
    const b = g.randn([200, 8]).add(0.1);
    const r1 = kernelInceptionDistance(a, b, { subsets: 10, generator: new Generator(42) });
    const r2 = kernelInceptionDistance(a, b, { subsets: 10, generator: new Generator(42) });
    const r3 = kernelInceptionDistance(a, b, { subsets: 10, generator: new Generator(43) });
    assert.deepEqual(r1.values, r2.values);
    assert.notDeepEqual(r1.values, r3.values);
    assert.equal(r1.subsetSize, 200); // min(1000, 300, 200)
    assert.equal(r1.seed, 42);
    // Default: 100 subsets; population std.
    const d = kernelInceptionDistance(a, b, { seed: 0 });
    assert.equal(d.subsets, 100);
    const mean = d.values.reduce((s, v) => s + v, 0) / d.values.length;
    const std = Math.sqrt(d.values.reduce((s, v) => s + (v - mean) ** 2, 0) / d.values.length);
    assert.ok(Math.abs(d.mean - mean) < 1e-15 && Math.abs(d.std - std) < 1e-15);
    assert.throws(() => kernelInceptionDistance(a, g.randn([10, 7])), /expected features/);
    assert.throws(() => polynomialMmd2Unbiased(tensor([[1]]), tensor([[1], [2]])), /equal sample counts/);
  });
});
