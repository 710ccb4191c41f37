import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, scalar, tensor } from '../src/tensor/index.js';
import {
  lossWeight, lossWeightTensor, P_MEAN, P_STD, preconditioning, preconditioningTensors, SIGMA_DATA, sigmaFromNormal,
} from '../src/diffusion/edm.js';

const close = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: ${actual} vs ${expected}`);

test('EDM constants (EDM Table 1)', () => {
  assert.equal(SIGMA_DATA, 0.5);
  assert.equal(P_MEAN, -1.2);
  assert.equal(P_STD, 1.2);
});

test('preconditioning table (EDM Table 1 formulas at σ = 0.002, 0.5, 80)', () => {
  // σ: [c_skip, c_out, c_in, c_noise, λ], computed from the formulas, to 6 significant digits.
  const table: [number, number[]][] = [
    [0.002, [0.999984, 0.001999984, 1.999984, -1.553652, 250004]],
    [0.5, [0.5, 0.353553, 1.414214, -0.173287, 8]],
    [80, [3.906097e-5, 0.49999, 0.0124998, 1.095507, 4.000156]],
  ];
  for (const [sigma, [cSkip, cOut, cIn, cNoise, lambda]] of table) {
    const c = preconditioning(sigma);
    close(c.cSkip, cSkip!, 5e-6, `c_skip(${sigma})`);
    close(c.cOut, cOut!, 5e-6, `c_out(${sigma})`);
    close(c.cIn, cIn!, 5e-6, `c_in(${sigma})`);
    close(c.cNoise, cNoise!, 5e-6, `c_noise(${sigma})`);
    close(lossWeight(sigma), lambda!, 5e-6, `λ(${sigma})`);
  }
});

test('λ(σ)·c_out(σ)² = 1 and c_skip + c_out²/σ_d² = 1 over many σ', () => {
  for (let e = -6; e <= 6; e += 0.25) {
    const sigma = Math.exp(e);
    const c = preconditioning(sigma);
    close(lossWeight(sigma) * c.cOut ** 2, 1, 1e-12, `λ·c_out² at σ=${sigma}`);
    // c_in normalises the noisy input: c_in²·(σ² + σ_d²) = 1.
    close(c.cIn ** 2 * (sigma ** 2 + 0.25), 1, 1e-12, `c_in at σ=${sigma}`);
  }
});

test('tensor forms agree with the number forms', () => {
  const sig = tensor([0.002, 0.5, 1, 80], [4, 1, 1, 1]);
  const w = lossWeightTensor(sig).toArray();
  const t = preconditioningTensors(sig);
  [0.002, 0.5, 1, 80].forEach((s, k) => {
    const c = preconditioning(s);
    close(w[k]!, lossWeight(s), 1e-6, `λ tensor ${s}`);
    close(t.cSkip.toArray()[k]!, c.cSkip, 1e-6, `c_skip tensor ${s}`);
    close(t.cOut.toArray()[k]!, c.cOut, 1e-6, `c_out tensor ${s}`);
    close(t.cIn.toArray()[k]!, c.cIn, 1e-6, `c_in tensor ${s}`);
    assert.ok(Math.abs(t.cNoise.toArray()[k]! - c.cNoise) < 1e-6, `c_noise tensor ${s}`);
  });
  assert.deepEqual(t.cIn.shape, [4, 1, 1, 1]);
});

test('training σ: exp(rnd·1.2 − 1.2), one per sample, reproducible by seed', () => {
  const draw = (n: number, seed: number) => {
    const rnd = new Generator(seed).randn([n, 1, 1, 1]);
    return { rnd, sigma: sigmaFromNormal(rnd) };
  };
  const a = draw(5, 7);
  const b = draw(5, 7);
  assert.deepEqual(a.sigma.shape, [5, 1, 1, 1]);
  assert.deepEqual(a.sigma.toArray(), b.sigma.toArray());
  const rnd = a.rnd.toArray();
  a.sigma.toArray().forEach((s, k) => close(s, Math.exp(rnd[k]! * 1.2 - 1.2), 1e-6, 'σ from rnd'));
  // The median training σ is exp(P_mean) = 0.301194.
  close(sigmaFromNormal(scalar(0)).item(), 0.301194, 1e-5, 'median σ');
  // Over many draws, ln σ has mean −1.2 and std 1.2.
  const many = draw(20000, 1).sigma.log().toArray();
  const mean = many.reduce((s, v) => s + v, 0) / many.length;
  const sd = Math.sqrt(many.reduce((s, v) => s + (v - mean) ** 2, 0) / (many.length - 1));
  assert.ok(Math.abs(mean + 1.2) < 0.03, `mean ln σ ${mean}`);
  assert.ok(Math.abs(sd - 1.2) < 0.03, `std ln σ ${sd}`);
});
