// The learning-rate and EMA schedules of the official training loop against
// values computed from its formulas: batch 256, batch_mul_avg 1.9 (486.4
// patch samples per step, counter increment 486), lr 2e-4 ramped over
// 10,000 kimg, EMA half-life 500 kimg with ramp-up ratio 0.05.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emaBeta, learningRate } from '../src/train/schedule.js';
import { PatchSchedule } from '../src/diffusion/patches.js';

const near = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: got ${actual}, expected ${expected} (±${rel * 100}%)`);

const IMAGES_PER_STEP = 256 * 1.9; // un-truncated, as the EMA exponent uses it
const ema = (curNimg: number) => emaBeta(curNimg, IMAGES_PER_STEP, 500, 0.05);

test('golden: batch_mul_avg 1.9 and the counter increment int(256 · 1.9) = 486', () => {
  const p = new PatchSchedule({ resolution: 64, realP: 0.5 });
  near(p.batchMulAvg, 1.9, 1e-12, 'batch_mul_avg');
  assert.equal(Math.floor(256 * p.batchMulAvg), 486);
  assert.equal(Math.floor(512 * p.batchMulAvg), 972);
});

test('golden: lr at cur_nimg 0 / 486 / 5M / ≥10M = 0 / 9.72e-9 / 1e-4 / 2e-4', () => {
  assert.equal(learningRate(2e-4, 0, 10000), 0, 'the first step has lr 0');
  near(learningRate(2e-4, 486, 10000), 9.72e-9, 1e-9, 'lr(486)');
  near(learningRate(2e-4, 5_000_000, 10000), 1e-4, 1e-12, 'lr(5M)');
  assert.equal(learningRate(2e-4, 10_000_000, 10000), 2e-4, 'lr(10M)');
  assert.equal(learningRate(2e-4, 10_000_486, 10000), 2e-4, 'lr past the ramp');
  assert.equal(learningRate(2e-4, 200_000_000, 10000), 2e-4, 'lr(200M)');
  // Linear in between, and monotone.
  near(learningRate(2e-4, 2_500_000, 10000), 5e-5, 1e-12, 'lr(2.5M)');
  let prev = -1;
  for (let n = 0; n <= 12_000_000; n += 486_000) {
    const lr = learningRate(2e-4, n, 10000);
    assert.ok(lr >= prev, `lr is monotone at ${n}`);
    prev = lr;
  }
  // No ramp: the base rate from the first step.
  assert.equal(learningRate(2e-4, 0, 0), 2e-4);
});

test('golden: EMA β at cur_nimg 0 / 486 / 10,000 / 1M / ≥10M = 0 / 9.43e-7 / 0.509516 / 0.993280 / 0.999326', () => {
  assert.equal(ema(0), 0, 'β = 0 at step 0: the EMA starts as a copy of the network');
  near(ema(486), 9.43e-7, 5e-3, 'β(486)');
  near(ema(10_000), 0.509516, 1e-5, 'β(10k)');
  near(ema(1_000_000), 0.99328, 1e-5, 'β(1M)');
  near(ema(10_000_000), 0.999326, 1e-6, 'β(10M)');
  // From 10M on the half-life is capped at 500k: β no longer changes.
  assert.equal(ema(50_000_000), ema(10_000_000));
  assert.equal(ema(200_000_000), ema(10_000_000));
  // The exponent uses batch · batch_mul_avg un-truncated (486.4), not the counter increment 486.
  const truncated = emaBeta(1_000_000, 486, 500, 0.05);
  assert.notEqual(ema(1_000_000), truncated);
  near(ema(10_000_000), 0.5 ** (486.4 / 500_000), 1e-12, 'β(10M) formula');
});

test('EMA without ramp-up uses the full half-life from the first step', () => {
  near(emaBeta(0, IMAGES_PER_STEP, 500, null), 0.5 ** (486.4 / 500_000), 1e-12, 'β(0) without ramp');
  near(emaBeta(486, IMAGES_PER_STEP, 500, null), 0.999326, 1e-6, 'β(486) without ramp');
  // β is non-decreasing in the counter with the ramp on.
  let prev = -1;
  for (let n = 0; n <= 12_000_000; n += 243_000) {
    const b = ema(n);
    assert.ok(b >= prev && b < 1, `β monotone and < 1 at ${n}`);
    prev = b;
  }
});
