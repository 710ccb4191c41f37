import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cat, Generator, liveTensors, tensor, zerosLike, type Tensor } from '../src/tensor/index.js';
import type { Denoiser } from '../src/diffusion/loss.js';
import { fullCoordinateGrid } from '../src/diffusion/patches.js';
import { liveTensorsAfterGc } from './helpers/gc.js';
import { churnGamma, edmSample, edmTimeSteps, generateImages, oneHot, seedBatches, SeedGenerators, toUint8 } from '../src/diffusion/sampler.js';

const near = (a: number, b: number, rel: number, what: string) =>
  assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-300), `${what}: ${a} vs ${b}`);
const maxAbs = (t: Tensor) => t.abs().amax().item();
const relErr = (a: Tensor, b: Tensor) => a.to('float64').sub(b.to('float64')).norm().item() / b.to('float64').norm().item();

/** What the net saw at one call (copied out: the sampler frees its step tensors when the step ends). */
interface Arr { shape: readonly number[]; dtype: string; values: number[] }
interface Call { x: Arr; sigma: Arr; xPos: Arr; xPosTensor: Tensor; labels: Arr | null }
const arr = (t: Tensor): Arr => ({ shape: [...t.shape], dtype: t.dtype, values: t.toArray() });
function recorder(calls: Call[], f: (x: Tensor, labels: Tensor | null) => Tensor): Denoiser {
  return (x, sigma, xPos, labels) => {
    calls.push({ x: arr(x), sigma: arr(sigma), xPos: arr(xPos!), xPosTensor: xPos!, labels: labels ? arr(labels) : null });
    return f(x, labels ?? null);
  };
}
const asTensor = (a: Arr) => tensor(Float64Array.from(a.values), a.shape);

test('time steps (ρ = 7, σ 0.002…80, t_N = 0, float64)', () => {
  const check = (n: number, head: number[], tail: number[]) => {
    const t = edmTimeSteps({ numSteps: n });
    assert.equal(t.length, n + 1);
    head.forEach((v, k) => near(t[k]!, v, 1e-7, `N=${n} t[${k}]`));
    tail.forEach((v, k) => near(t[n - tail.length + k]!, v, 5e-6, `N=${n} t[${n - tail.length + k}]`));
    assert.equal(t[0], 80);
    near(t[n - 1]!, 0.002, 1e-12, 'σ_min');
    assert.equal(t[n], 0);
    for (let k = 0; k < n; k++) assert.ok(t[k]! > t[k + 1]!, 'decreasing');
  };
  check(50, [80, 71.501038, 63.788045, 56.799492, 50.477765], [0.00514927, 0.00326076, 0.002]);
  check(18, [80, 57.585985, 40.785574], [0.00752802, 0.002]);
  check(256, [80, 78.302851, 76.636656], [0.00220287, 0.002]);
  assert.deepEqual([...edmTimeSteps({ numSteps: 1 })], [80, 0]);
  assert.throws(() => edmTimeSteps({ numSteps: 0 }), /positive integer/);
});

test('churn γ = min(S_churn/N, √2 − 1) inside [S_min, S_max] only', () => {
  const o = { sChurn: 40, sMin: 0.05, sMax: 50 };
  assert.equal(churnGamma(10, 256, o), 0.15625);
  assert.equal(churnGamma(50, 256, o), 0.15625);
  assert.equal(churnGamma(0.05, 256, o), 0.15625);
  assert.equal(churnGamma(50.01, 256, o), 0);
  assert.equal(churnGamma(0.049, 256, o), 0);
  assert.equal(churnGamma(80, 256, o), 0);
  assert.equal(churnGamma(10, 50, o), Math.SQRT2 - 1); // 40/50 = 0.8 is capped
  assert.equal(churnGamma(10, 256, { sChurn: 0 }), 0);
  // Which of the 256 steps churn: exactly those with 0.05 ≤ t_i ≤ 50.
  const t = edmTimeSteps({ numSteps: 256 });
  const applied = [...t.slice(0, 256)].filter((v) => churnGamma(v, 256, o) > 0);
  assert.ok(applied.length > 0 && applied.every((v) => v >= 0.05 && v <= 50));
});

test('D ≡ 0: Heun follows x = x₀·t/t₀ exactly and ends at 0; NFE = 2N − 1; the net sees float32 x, 0-dim σ and the grid', () => {
  const n = 5;
  const latents = new Generator(0).randn([2, 3, 8, 8]);
  const xPos = fullCoordinateGrid(2, 8);
  const calls: Call[] = [];
  const progress: [number, number][] = [];
  const out = edmSample(recorder(calls, (x) => zerosLike(x)), latents, xPos, { numSteps: n, onStep: (k, total) => progress.push([k, total]) });
  assert.equal(calls.length, 2 * n - 1);
  assert.equal(out.dtype, 'float64');
  assert.ok(maxAbs(out) < 1e-12, `final ${maxAbs(out)}`);
  const t = edmTimeSteps({ numSteps: n });
  // σ sequence: Euler at t_i, Heun at t_{i+1} for i < N − 1.
  const expected: number[] = [];
  for (let i = 0; i < n; i++) {
    expected.push(t[i]!);
    if (i < n - 1) expected.push(t[i + 1]!);
  }
  calls.forEach((c, k) => {
    assert.deepEqual(c.sigma.shape, []);
    assert.equal(c.sigma.dtype, 'float32');
    assert.equal(c.sigma.values[0], Math.fround(expected[k]!));
    assert.equal(c.x.dtype, 'float32');
    assert.equal(c.xPosTensor, xPos);
    assert.equal(c.labels, null);
  });
  // The network input at step i is x₀·t_i (the linear ODE solution).
  const x0 = latents.to('float64');
  for (let i = 0; i < n; i++) assert.ok(relErr(asTensor(calls[2 * i]!.x), x0.mul(t[i]!)) < 1e-6, `state at step ${i}`);
  assert.deepEqual(progress, [[1, n], [2, n], [3, n], [4, n], [5, n]]);
});

test('D = c·x: matches the scalar Heun recurrence (correction on all steps but the last)', () => {
  const c = 0.3, n = 7;
  const latents = new Generator(4).randn([1, 1, 4, 4]);
  const out = edmSample(recorder([], (x) => x.mul(c)), latents, fullCoordinateGrid(1, 4), { numSteps: n });
  const t = edmTimeSteps({ numSteps: n });
  // dx/dt = (x − D)/t = (1 − c)·x/t, so every element scales by the same factor.
  let f = t[0]!;
  for (let i = 0; i < n; i++) {
    const h = t[i + 1]! - t[i]!;
    const d = ((1 - c) * f) / t[i]!;
    let next = f + h * d;
    if (i < n - 1) next = f + h * (0.5 * d + 0.5 * (((1 - c) * next) / t[i + 1]!));
    f = next;
  }
  // The last (Euler-only) step lands on c·x exactly: a Heun correction there would divide by t_N = 0.
  assert.ok(Number.isFinite(f) && f !== 0);
  assert.ok(relErr(out, latents.to('float64').mul(f)) < 1e-6, `rel err ${relErr(out, latents.to('float64').mul(f))}`);
});

test('stochastic: churn noise √(t̂² − t²)·S_noise·ε is added only where S_min ≤ t ≤ S_max, with the step-k noise', () => {
  const n = 6;
  const o = { numSteps: n, sChurn: 40, sMin: 0.05, sMax: 50, sNoise: 1.003 };
  const latents = new Generator(1).randn([2, 3, 4, 4]);
  const noise = Array.from({ length: n }, (_, k) => new Generator(100 + k).randn([2, 3, 4, 4]));
  // D(x) = x makes every Euler/Heun update vanish: the result is x₀ plus the added churn.
  const identity: Denoiser = (x) => x;
  const out = edmSample(identity, latents, fullCoordinateGrid(2, 4), { ...o, churnNoise: noise });
  const t = edmTimeSteps({ numSteps: n });
  let expected = latents.to('float64').mul(80);
  const applied: number[] = [];
  for (let k = 0; k < n; k++) {
    const g = churnGamma(t[k]!, n, o);
    if (g === 0) continue;
    applied.push(k);
    const th = t[k]! * (1 + g);
    expected = expected.add(noise[k]!.to('float64').mul(Math.sqrt(th * th - t[k]! * t[k]!) * 1.003));
  }
  assert.ok(applied.length >= 2 && !applied.includes(0), `applied steps ${applied}`);
  assert.ok(relErr(out, expected) < 1e-6);
  // A noise source is asked at every step by default (to stay in step with the official stream)…
  const asked: number[] = [];
  edmSample(identity, latents, fullCoordinateGrid(2, 4), { ...o, churnNoise: (k, shape) => (asked.push(k), noise[k]!.reshape(...shape)) });
  assert.deepEqual(asked, [0, 1, 2, 3, 4, 5]);
  // …or only where it is used.
  const used: number[] = [];
  edmSample(identity, latents, fullCoordinateGrid(2, 4), { ...o, drawAtEveryStep: false, churnNoise: (k) => (used.push(k), noise[k]!) });
  assert.deepEqual(used, applied);
  assert.throws(() => edmSample(identity, latents, fullCoordinateGrid(2, 4), { ...o }), /churn noise/);
});

test('classifier-free guidance: one call on [x, x] with labels [zeros, onehot], D = D_u + w(D_c − D_u)', () => {
  const labels = oneHot([2, 0], 3);
  const latents = new Generator(2).randn([2, 1, 2, 2]);
  const xPos = fullCoordinateGrid(2, 2);
  // D depends only on the label: 1 + 10·class + 100·[label non-zero] per sample.
  const labelNet = (x: Tensor, l: Tensor | null): Tensor => {
    const v = l!.mul(tensor([10, 20, 30])).sum(1).add(1).view(-1, 1, 1, 1);
    return zerosLike(x).add(v);
  };
  const calls: Call[] = [];
  // One step: x₁ = x₀ + (0 − t₀)(x₀ − D)/t₀ = D(x₀), so the output is the guided D itself.
  const out = edmSample(recorder(calls, labelNet), latents, xPos, { numSteps: 1, classLabels: labels, cfg: 1.5 });
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0]!.x.shape, [4, 1, 2, 2]);
  assert.deepEqual(calls[0]!.labels!.values, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
  assert.deepEqual(calls[0]!.xPos.values, cat([xPos, xPos], 0).toArray());
  assert.deepEqual(calls[0]!.x.values, cat([latents.mul(80), latents.mul(80)], 0).toArray());
  // D_u = 1 for both; D_c = 31 (class 2) and 11 (class 0): 1 + 1.5·30 = 46, 1 + 1.5·10 = 16.
  const v = out.toArray();
  assert.ok(v.slice(0, 4).every((a) => Math.abs(a - 46) < 1e-9), `${v}`);
  assert.ok(v.slice(4).every((a) => Math.abs(a - 16) < 1e-9), `${v}`);
  // w = 1 or null: no guidance, a single batch with the labels as given.
  for (const cfg of [1, null]) {
    const plain: Call[] = [];
    const o = edmSample(recorder(plain, labelNet), latents, xPos, { numSteps: 1, classLabels: labels, cfg });
    assert.deepEqual(plain[0]!.x.shape, [2, 1, 2, 2]);
    assert.deepEqual(o.toArray(), [31, 31, 31, 31, 11, 11, 11, 11]);
  }
  assert.throws(() => edmSample(labelNet as Denoiser, latents, xPos, { numSteps: 1, cfg: 2 }), /class labels/);
});

test('per-seed generation: an image depends only on its seed (latents, label, churn), not on its batch', () => {
  // A denoiser that mixes the state, the coordinates and the label, per sample only.
  const net: Denoiser = (x, sigma, xPos, labels) => {
    const lab = labels!.mul(tensor([0.1, -0.2, 0.3, 0.05])).sum(1).view(-1, 1, 1, 1);
    return x.mul(0.5).add(xPos!.narrow(1, 0, 1).mul(0.2)).add(lab).mul(sigma.div(sigma.add(1)));
  };
  const o = { channels: 3, resolution: 8, numSteps: 4, labelDim: 4, sChurn: 30, sMin: 0.05, sMax: 50, sNoise: 1.003 };
  const alone = generateImages(net, { ...o, seeds: [5] });
  const batch = generateImages(net, { ...o, seeds: [3, 4, 5] });
  assert.deepEqual(batch.images.shape, [3, 3, 8, 8]);
  assert.equal(batch.images.dtype, 'float64');
  assert.deepEqual(alone.images.toArray(), batch.images.narrow(0, 2, 1).toArray());
  assert.equal(alone.classes![0], batch.classes![2]);
  assert.notDeepEqual(batch.images.narrow(0, 0, 1).toArray(), batch.images.narrow(0, 1, 1).toArray());
  // Repeatable.
  assert.deepEqual(generateImages(net, { ...o, seeds: [3, 4, 5] }).images.toArray(), batch.images.toArray());
  // The latents are generator(seed).randn([C, S, S]) (the StackedRandomGenerator); the label is drawn next.
  const identity: Denoiser = (x) => x;
  const det = generateImages(identity, { channels: 3, resolution: 8, numSteps: 3, seeds: [7, 9] });
  // (D = x keeps the state at t₀·latents up to the float32 round trip through the net.)
  assert.ok(relErr(det.images.narrow(0, 1, 1), new Generator(9).randn([1, 3, 8, 8]).mul(80)) < 1e-7);
  assert.equal(det.classes, null);
  const g = new Generator(9);
  g.randn([3, 8, 8]);
  assert.equal(generateImages(identity, { ...o, sChurn: 0, seeds: [9] }).classes![0], g.randint(0, 4, []).item());
  // A forced class overrides the random one.
  assert.deepEqual(generateImages(identity, { ...o, sChurn: 0, seeds: [1, 2], classIndex: 3 }).classes, [3, 3]);
  assert.throws(() => generateImages(identity, { channels: 3, resolution: 8, numSteps: 1, seeds: [1], classIndex: 0 }), /unconditional/);
  // SeedGenerators draws per seed and stacks.
  const sg = new SeedGenerators([5, 6]);
  assert.deepEqual(sg.randn([2]).toArray(), [...new Generator(5).randn([2]).toArray(), ...new Generator(6).randn([2]).toArray()]);
});

test('larger canvas: the net gets the extended grid of the requested size at every call', () => {
  const calls: Call[] = [];
  const out = generateImages(recorder(calls, (x) => zerosLike(x)), { channels: 3, resolution: 16, imageSize: 24, xStart: -4, yStart: 2, numSteps: 2, seeds: [0, 1] });
  assert.deepEqual(out.images.shape, [2, 3, 24, 24]);
  const grid = fullCoordinateGrid(2, 16, { imageSize: 24, xStart: -4, yStart: 2 }).toArray();
  assert.equal(calls.length, 3);
  for (const c of calls) assert.deepEqual(c.xPos.values, grid);
  assert.ok(grid[0]! < -1 && grid[23]! > 1);
});

test('toUint8: x·127.5 + 128, clipped, truncated; NCHW → NHWC', () => {
  // One image, 3 channels, 1×2 pixels.
  const values = [-1, 0, 1, 1.5, -2, 0.5 / 127.5, (200.7 - 128) / 127.5, -0.001, NaN];
  const img = tensor(values.concat([0, 0, 0]).slice(0, 6), [1, 3, 1, 2], { dtype: 'float64' });
  const b = toUint8(img);
  assert.equal(b.count, 1);
  assert.equal(b.height, 1);
  assert.equal(b.width, 2);
  assert.equal(b.channels, 3);
  // Channel-major input [[-1, 0], [1, 1.5], [-2, 0.5/127.5]] → pixels (R, G, B).
  assert.deepEqual([...b.data], [0, 255, 0, 128, 255, 128]);
  const more = toUint8(tensor([(200.7 - 128) / 127.5, -0.001, 0.999, 2 / 255 - 1 / 255, NaN], [1, 1, 1, 5], { dtype: 'float64' }));
  // 200.7 → 200 (truncation), −0.001 → 127.87 → 127, 0.999 → 255.37 → 255, NaN → 0.
  assert.deepEqual([...more.data], [200, 127, 255, 128, 0]);
  // The +128 trap: 0 maps to 128, not 127.
  assert.equal(toUint8(tensor([0], [1, 1, 1, 1])).data[0], 128);
  assert.throws(() => toUint8(tensor([0, 0, 0, 0], [1, 4, 1, 1])), /4 channels/);
});

test('seed batches as generate.py tensor_split', () => {
  assert.deepEqual(seedBatches([0, 1, 2, 3, 4, 5, 6], 3), [[0, 1, 2], [3, 4], [5, 6]]);
  assert.deepEqual(seedBatches([0, 1, 2, 3], 4), [[0, 1, 2, 3]]);
  assert.deepEqual(seedBatches([], 4), []);
});

test('no tensor leaks: the sampler frees every step, CFG and per-seed draws included', () => {
  const net: Denoiser = (x, sigma, xPos, labels) => x.mul(0.5).add(xPos!.narrow(1, 0, 1)).add(labels ? labels.sum(1).view(-1, 1, 1, 1) : 0).mul(sigma.div(sigma.add(1)));
  // Earlier tests' garbage is collected first: a GC during the run would free it and hide a leak as a
  // negative count (seen once in CI: -6).
  const run = () => {
    const before = liveTensorsAfterGc();
    const r = generateImages(net, { channels: 3, resolution: 8, numSteps: 4, seeds: [1, 2], labelDim: 3, cfg: 1.3, sChurn: 10 });
    r.images.dispose();
    return liveTensors() - before;
  };
  run(); // warm-up: lazily created globals, if any
  assert.equal(run(), 0);
});
