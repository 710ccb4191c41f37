import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, liveTensors, ones, scope, tensor, zerosLike, type Tensor } from '../src/tensor/index.js';
import { lossWeight } from '../src/diffusion/edm.js';
import { patchLoss, reducePatchLoss, type Denoiser } from '../src/diffusion/loss.js';
import { patchCoordinates } from '../src/diffusion/patches.js';
import { liveTensorsAfterGc } from './helpers/gc.js';

const nearAll = (a: readonly number[], b: readonly number[], rel: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  a.forEach((v, k) => assert.ok(Math.abs(v - b[k]!) <= rel * Math.max(1, Math.abs(b[k]!)), `${what}[${k}]: ${v} vs ${b[k]}`));
};

interface Call { x: Tensor; sigma: Tensor; xPos: Tensor; labels: Tensor | null; augment: Tensor | null }

/** A mock denoiser that records its inputs and returns zeros (so the loss is λ(σ)·y²). */
function recordingZeroNet(calls: Call[]): Denoiser {
  return (x, sigma, xPos, labels, augment) => {
    calls.push({ x, sigma, xPos: xPos!, labels: labels ?? null, augment: augment ?? null });
    return zerosLike(x);
  };
}

test('patch loss: crop, σ = exp(1.2·rnd − 1.2) per sample, y + σ·ε into the net with raw coordinates, λ(σ)(D − y)²', () => {
  const n = 3, c = 3, R = 8, s = 4;
  const images = new Generator(0).randn([n, c, R, R]).clamp(-1, 1);
  const rnd = tensor([-1, 0, 0.5], [n, 1, 1, 1]);
  const noise = new Generator(1).randn([n, c, s, s]);
  const labels = tensor([[1, 0], [0, 1], [1, 0]]);
  const calls: Call[] = [];
  const r = patchLoss({ net: recordingZeroNet(calls), images, patchSize: s, labels, rowOffsets: [0, 4, 2], colOffsets: [4, 0, 3], rndNormal: rnd, noise });
  assert.equal(calls.length, 1);
  const call = calls[0]!;
  const sig = [-1, 0, 0.5].map((v) => Math.exp(v * 1.2 - 1.2));
  assert.deepEqual(call.sigma.shape, [n, 1, 1, 1]);
  nearAll(call.sigma.toArray(), sig, 1e-6, 'σ');
  // Coordinates go in unscaled and unnoised.
  assert.deepEqual(call.xPos.toArray(), patchCoordinates([0, 4, 2], [4, 0, 3], s, R).toArray());
  assert.equal(call.labels, labels);
  assert.equal(call.augment, null);
  // Noisy input = crop + σ·ε.
  const y = r.patches.toArray();
  const eps = noise.toArray();
  const per = c * s * s;
  nearAll(call.x.toArray(), y.map((v, k) => v + sig[Math.floor(k / per)]! * eps[k]!), 1e-6, 'y + σε');
  // With D ≡ 0 the loss is λ(σ)·y², elementwise, shape [N, C, s, s].
  assert.deepEqual(r.loss.shape, [n, c, s, s]);
  nearAll(r.loss.toArray(), y.map((v, k) => lossWeight(sig[Math.floor(k / per)]!) * v * v), 1e-5, 'loss');
  assert.deepEqual(r.rowOffsets, [0, 4, 2]);
});

test('patch loss: a perfect denoiser gives zero loss; the generator draws offsets, σ and noise in the official order', () => {
  const images = new Generator(2).randn([4, 3, 16, 16]);
  // A denoiser returning the clean crop exactly: the loss must vanish.
  let clean: Tensor | null = null;
  const oracle: Denoiser = () => clean!;
  const r0 = patchLoss({ net: oracle, images, patchSize: 8, generator: new Generator(11), augment: (y) => { clean = y; return { images: y, labels: null }; } });
  assert.ok(r0.loss.abs().amax().item() === 0);

  // Drawing from a generator = injecting the same four draws in the order rows, cols, rnd, noise.
  const calls: Call[] = [];
  const a = patchLoss({ net: recordingZeroNet(calls), images, patchSize: 8, generator: new Generator(42) });
  const g = new Generator(42);
  const rows = g.randint(0, 9, [4]);
  const cols = g.randint(0, 9, [4]);
  const rnd = g.randn([4, 1, 1, 1]);
  const noise = g.randn([4, 3, 8, 8]);
  const b = patchLoss({ net: recordingZeroNet(calls), images, patchSize: 8, rowOffsets: rows, colOffsets: cols, rndNormal: rnd, noise });
  assert.deepEqual(a.rowOffsets, b.rowOffsets);
  assert.deepEqual(a.colOffsets, b.colOffsets);
  assert.deepEqual(a.sigma.toArray(), b.sigma.toArray());
  assert.deepEqual(a.loss.toArray(), b.loss.toArray());
  assert.deepEqual(calls[0]!.x.toArray(), calls[1]!.x.toArray());
  assert.throws(() => patchLoss({ net: recordingZeroNet([]), images, patchSize: 8, rowOffsets: rows, colOffsets: cols }), /generator/);
  assert.throws(() => patchLoss({ net: recordingZeroNet([]), images, patchSize: 8, generator: g, noise: ones([4, 3, 16, 16]) }), /noise has shape/);
});

test('patch loss: augmentation acts on the crops, the coordinates stay, its labels reach the net', () => {
  const images = new Generator(3).randn([2, 3, 8, 8]);
  const calls: Call[] = [];
  const augLabels = tensor([[1, 0, 0], [0, 1, 0]]);
  const r = patchLoss({
    net: recordingZeroNet(calls), images, patchSize: 4, rowOffsets: [1, 2], colOffsets: [3, 4], generator: new Generator(0),
    augment: (y) => ({ images: y.flip(3), labels: augLabels }),
  });
  assert.equal(calls[0]!.augment, augLabels);
  assert.deepEqual(calls[0]!.xPos.toArray(), patchCoordinates([1, 2], [3, 4], 4, 8).toArray());
  // The target is the augmented crop.
  const unflipped = patchLoss({ net: recordingZeroNet([]), images, patchSize: 4, rowOffsets: [1, 2], colOffsets: [3, 4], generator: new Generator(0) });
  assert.deepEqual(r.patches.toArray(), unflipped.patches.flip(3).toArray());
});

test('reduction: sum·loss_scaling/(batch_gpu_total·batch_mul), so smaller patches weigh less than the per-pixel mean would', () => {
  const loss = ones([8, 3, 4, 4]);
  assert.equal(reducePatchLoss(loss, 4, 2).item(), (8 * 3 * 16) / (4 * 2));
  assert.equal(reducePatchLoss(loss, 4, 2, 100).item(), (100 * 8 * 3 * 16) / (4 * 2));
  // R = 64, batch_gpu 2, unit per-pixel loss: a full round sums to C·64² per sample,
  // a 16×16 round (batch_mul 4, 4× the samples) to C·16² per sample: ratio 1/16.
  const full = reducePatchLoss(ones([2, 3, 64, 64]), 2, 1).item();
  const small = reducePatchLoss(ones([8, 3, 16, 16]), 2, 4).item();
  assert.equal(small / full, 1 / 16);
  const mid = reducePatchLoss(ones([4, 3, 32, 32]), 2, 2).item();
  assert.equal(mid / full, 1 / 4);
  assert.throws(() => reducePatchLoss(loss, 0, 1), /positive/);
});

test('no tensor leaks: a loss evaluation inside scope() frees everything but what it returns', () => {
  const images = new Generator(2).randn([4, 3, 16, 16]);
  const net: Denoiser = (x, sigma) => x.mul(sigma.div(sigma.add(1)));
  const g = new Generator(0);
  const before = liveTensorsAfterGc();
  const v = scope(() => reducePatchLoss(patchLoss({ net, images, patchSize: 8, generator: g }).loss, 4, 2).item());
  assert.ok(Number.isFinite(v));
  assert.equal(liveTensors(), before);
});
