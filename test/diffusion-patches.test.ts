import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Generator, liveTensors, tensor, type Tensor } from '../src/tensor/index.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { coordinateValues, fullCoordinateGrid, pachify, patchCoordinates, PatchSchedule } from '../src/diffusion/patches.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { liveTensorsAfterGc } from './helpers/gc.js';

const REF = REFERENCE_DIR + '/';

const near = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
const nearAll = (a: readonly number[], b: readonly number[], tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  a.forEach((v, k) => near(v, b[k]!, tol, `${what}[${k}]`));
};

// ---- schedule ----------------------------------------------------------------------------------

test('R = 64, p = 0.5: the official patch list, pmf, batch_mul 4/2/1 and batch_mul_avg 1.9', () => {
  const s = new PatchSchedule({ resolution: 64, realP: 0.5, minPatchMultiple: 8 });
  assert.deepEqual(s.patchSizes, [16, 32, 64]);
  nearAll(s.probabilities, [0.2, 0.3, 0.5], 1e-15, 'p_list');
  assert.deepEqual(s.batchMuls, [4, 2, 1]);
  assert.deepEqual([16, 32, 64].map((p) => s.batchMul(p)), [4, 2, 1]);
  near(s.batchMulAvg, 1.9, 1e-12, 'batch_mul_avg');
  // Counter increments per step, int(batch · 1.9): the README's batch 256 and the paper's 512.
  assert.equal(Math.trunc(256 * s.batchMulAvg), 486);
  assert.equal(Math.trunc(512 * s.batchMulAvg), 972);
  assert.throws(() => s.batchMul(48), /not in this schedule/);
});

test('R = 32 pixel mode: no KeyError, the documented rule R/s gives 8/16/32 with 4/2/1 and avg 1.9', () => {
  const s = new PatchSchedule({ resolution: 32, realP: 0.5, minPatchMultiple: 8 });
  assert.deepEqual(s.patchSizes, [8, 16, 32]);
  assert.deepEqual(s.batchMuls, [4, 2, 1]);
  near(s.batchMulAvg, 1.9, 1e-12, 'batch_mul_avg');
  // R = 128 and 256: the official table would give 8/4/1 and 8/2/1; R/s stays 4/2/1 consistently.
  for (const R of [128, 256]) assert.deepEqual(new PatchSchedule({ resolution: R, realP: 0.5 }).batchMuls, [4, 2, 1]);
  // batch_mul_avg = Σ p·mul for other p as well.
  const q = new PatchSchedule({ resolution: 32, realP: 0.25 });
  near(q.batchMulAvg, 0.3 * 4 + 0.45 * 2 + 0.25, 1e-12, 'avg at p = 0.25');
});

test('latent mode (R = 32): sizes 16/32, pmf 0.5/0.5, batch_mul 2/1, avg 1.5, counter 1536 at batch 1024', () => {
  const s = new PatchSchedule({ resolution: 32, realP: 0.5, mode: 'latent', minPatchMultiple: 8 });
  assert.deepEqual(s.patchSizes, [16, 32]);
  nearAll(s.probabilities, [0.5, 0.5], 1e-15, 'p_list');
  assert.deepEqual(s.batchMuls, [2, 1]);
  near(s.batchMulAvg, 1.5, 1e-12, 'avg');
  assert.equal(Math.trunc(1024 * s.batchMulAvg), 1536);
});

test('schedule validation: p outside [0, 1], R not divisible by 4, sizes the network cannot take', () => {
  assert.throws(() => new PatchSchedule({ resolution: 64, realP: 1.5 }), /real_p/);
  assert.throws(() => new PatchSchedule({ resolution: 64, realP: -0.1 }), /real_p/);
  assert.throws(() => new PatchSchedule({ resolution: 64, realP: NaN }), /real_p/);
  assert.throws(() => new PatchSchedule({ resolution: 30, realP: 0.5 }), /divisible by 4/);
  assert.throws(() => new PatchSchedule({ resolution: 16, realP: 0.5, minPatchMultiple: 8 }), /patch size 4 .* multiple of 8/);
  // p = 1 is plain EDM: the small sizes are never drawn, so they need not fit the network.
  const edm = new PatchSchedule({ resolution: 16, realP: 1, minPatchMultiple: 8 });
  assert.equal(edm.batchMulAvg, 1);
  assert.equal(edm.sample(new Generator(0)), 16);
  assert.equal(edm.progressiveSize(0, 1e6), 16);
});

test('stochastic draws: frequencies within tolerance of 0.2/0.3/0.5 over 20,000 draws, reproducible by seed', () => {
  const s = new PatchSchedule({ resolution: 64, realP: 0.5, generator: new Generator(123) });
  const counts = new Map<number, number>([[16, 0], [32, 0], [64, 0]]);
  const n = 20000;
  const seq: number[] = [];
  for (let k = 0; k < n; k++) {
    const size = s.choose(0, 1e9);
    seq.push(size);
    counts.set(size, (counts.get(size) ?? 0) + 1);
  }
  assert.equal(counts.size, 3);
  // 5 standard deviations of a binomial proportion: ≤ 0.018.
  for (const [size, p] of [[16, 0.2], [32, 0.3], [64, 0.5]] as const) {
    const f = counts.get(size)! / n;
    assert.ok(Math.abs(f - p) < 5 * Math.sqrt((p * (1 - p)) / n), `size ${size}: frequency ${f} vs ${p}`);
  }
  const again = new PatchSchedule({ resolution: 64, realP: 0.5 });
  const g = new Generator(123);
  for (let k = 0; k < 50; k++) assert.equal(again.sample(g), seq[k]);
  // The cdf cut points: u < 0.2 → 16, u < 0.5 → 32, else 64.
  assert.deepEqual([0, 0.1999, 0.2, 0.4999, 0.5, 0.9999].map((u) => s.sizeForUniform(u)), [16, 16, 32, 32, 64, 64]);
});

test('progressive schedule switches at f = floor(kimg)/total_kimg > 0.2 and > 0.5', () => {
  const s = new PatchSchedule({ resolution: 64, realP: 0.5, progressive: true });
  const total = 1_000_000; // 1000 kimg
  const at = (nimg: number) => s.choose(nimg, total);
  assert.equal(at(0), 16);
  assert.equal(at(200_999), 16); // floor → 200 kimg, f = 0.2 ≤ 0.2
  assert.equal(at(201_000), 32); // f = 0.201
  assert.equal(at(500_999), 32); // f = 0.5 ≤ 0.5
  assert.equal(at(501_000), 64);
  assert.equal(at(5_000_000), 64); // past the end: the last bound is 10
  // In progressive mode batch_mul_avg follows the current size.
  assert.equal(s.batchMulAvgAt(0, total), 4);
  assert.equal(s.batchMulAvgAt(300_000, total), 2);
  assert.equal(s.batchMulAvgAt(900_000, total), 1);
  const latent = new PatchSchedule({ resolution: 32, realP: 0.5, mode: 'latent', progressive: true });
  assert.equal(latent.choose(500_999, total), 16);
  assert.equal(latent.choose(501_000, total), 32);
});

// ---- coordinates -----------------------------------------------------------------------------

test('coordinate values (index/(R−1), no exact 0)', () => {
  const v64 = coordinateValues(0, 64, 64);
  const want64: [number, number][] = [[0, -1], [1, -0.968254], [31, -0.015873], [32, 0.015873], [62, 0.968254], [63, 1]];
  for (const [k, v] of want64) near(v64[k]!, v, 1e-6, `R=64 k=${k}`);
  assert.equal(v64[0], -1);
  assert.equal(v64[63], 1);
  assert.ok(!v64.includes(0));
  const v32 = coordinateValues(0, 32, 32);
  for (const [k, v] of [[0, -1], [1, -0.935484], [15, -0.032258], [16, 0.032258], [31, 1]] as const) near(v32[k]!, v, 1e-6, `R=32 k=${k}`);
});

test('16-patch at row 10, column 40 (R = 64): channel 0 varies along columns, channel 1 along rows', () => {
  const pos = patchCoordinates([10], [40], 16, 64);
  assert.deepEqual(pos.shape, [1, 2, 16, 16]);
  assert.equal(pos.dtype, 'float32');
  const d = pos.toArray();
  const at = (c: number, a: number, b: number) => d[c * 256 + a * 16 + b]!;
  for (let a = 0; a < 16; a++)
    for (let b = 0; b < 16; b++) {
      near(at(0, a, b), ((40 + b) / 63) * 2 - 1, 1e-6, `x(${a},${b})`);
      near(at(1, a, b), ((10 + a) / 63) * 2 - 1, 1e-6, `y(${a},${b})`);
    }
  // Not swapped: x is constant down a column, y constant along a row.
  assert.notEqual(at(0, 0, 0), at(0, 0, 1));
  assert.equal(at(0, 0, 3), at(0, 15, 3));
  assert.notEqual(at(1, 0, 0), at(1, 1, 0));
  assert.equal(at(1, 4, 0), at(1, 4, 15));
});

test('full coordinate grid: the training grid, and larger / shifted canvases beyond [−1, 1]', () => {
  const g = fullCoordinateGrid(3, 64);
  assert.deepEqual(g.shape, [3, 2, 64, 64]);
  const d = g.toArray();
  const plane = 64 * 64;
  near(d[0]!, -1, 0, 'x(0,0)');
  near(d[63]!, 1, 0, 'x(0,63)');
  near(d[plane + 63 * 64]!, 1, 0, 'y(63,0)');
  // Every batch entry is the same grid.
  assert.deepEqual(d.slice(0, 2 * plane), d.slice(4 * plane, 6 * plane));
  // Equal to the crop coordinates of a full-size "patch" at offset 0.
  assert.deepEqual(patchCoordinates([0], [0], 64, 64).toArray(), d.slice(0, 2 * plane));

  // 96×96 canvas starting 16 pixels left of and 8 above the training frame.
  const big = fullCoordinateGrid(1, 64, { imageSize: 96, xStart: -16, yStart: -8 });
  assert.deepEqual(big.shape, [1, 2, 96, 96]);
  const b = big.toArray();
  const p = 96 * 96;
  near(b[0]!, (-16 / 63) * 2 - 1, 1e-6, 'x at column 0');
  near(b[95]!, (79 / 63) * 2 - 1, 1e-6, 'x at column 95');
  near(b[16]!, -1, 1e-7, 'x at the training frame left edge');
  near(b[p]!, (-8 / 63) * 2 - 1, 1e-6, 'y at row 0');
  near(b[p + 95 * 96 + 7]!, (87 / 63) * 2 - 1, 1e-6, 'y at row 95');
  assert.ok(b[0]! < -1 && b[95]! > 1);
});

// ---- crops -------------------------------------------------------------------------------------

function naiveCrop(images: number[], n: number, c: number, R: number, s: number, rows: number[], cols: number[]): number[] {
  const out: number[] = [];
  for (let k = 0; k < n; k++)
    for (let ch = 0; ch < c; ch++)
      for (let a = 0; a < s; a++)
        for (let b = 0; b < s; b++) out.push(images[((k * c + ch) * R + rows[k]! + a) * R + cols[k]! + b]!);
  return out;
}

test('pachify: per-image offsets cover [0, R − s] inclusive and the crops are the right windows', () => {
  const n = 400, c = 2, R = 12, s = 4;
  const images = new Generator(3).randn([n, c, R, R]);
  const g = new Generator(9);
  const out = pachify(images, s, { generator: g });
  assert.deepEqual(out.patches.shape, [n, c, s, s]);
  assert.deepEqual(out.xPos.shape, [n, 2, s, s]);
  for (const offs of [out.rowOffsets, out.colOffsets]) {
    assert.equal(offs.length, n);
    assert.ok(offs.every((o) => Number.isInteger(o) && o >= 0 && o <= R - s));
    assert.ok(offs.includes(0), 'offset 0 is reachable');
    assert.ok(offs.includes(R - s), 'offset R − s is reachable (inclusive bound)');
    assert.ok(new Set(offs).size === R - s + 1, 'every offset occurs');
  }
  // Offsets are per image, and rows and columns are independent draws.
  assert.notDeepEqual(out.rowOffsets, out.colOffsets);
  // Same draws as torch.randint(0, R − s + 1, (N,)) twice on a generator.
  const check = new Generator(9);
  assert.deepEqual(out.rowOffsets, check.randint(0, R - s + 1, [n]).toArray());
  assert.deepEqual(out.colOffsets, check.randint(0, R - s + 1, [n]).toArray());
  assert.deepEqual(out.patches.toArray(), naiveCrop(images.toArray(), n, c, R, s, out.rowOffsets, out.colOffsets));
  // The coordinates are those of each image's own window.
  assert.deepEqual(out.xPos.toArray(), patchCoordinates(out.rowOffsets, out.colOffsets, s, R).toArray());
});

test('pachify: s = R uses offsets 0 and draws nothing; explicit offsets are validated', () => {
  const images = new Generator(1).randn([3, 3, 8, 8]);
  const g = new Generator(5);
  const full = pachify(images, 8, { generator: g });
  assert.deepEqual(full.rowOffsets, [0, 0, 0]);
  assert.deepEqual(full.patches.toArray(), images.toArray());
  // The generator was not advanced.
  assert.deepEqual(g.randn([4]).toArray(), new Generator(5).randn([4]).toArray());
  assert.throws(() => pachify(images, 4, { rowOffsets: [0, 1, 5], colOffsets: [0, 0, 0] }), /range \[0, 4\]/);
  assert.throws(() => pachify(images, 4, { rowOffsets: [0, 1], colOffsets: [0, 0] }), /2 row offsets for 3 images/);
  assert.throws(() => pachify(images, 4, {}), /generator/);
  assert.throws(() => pachify(images, 9, { generator: g }), /patch size 9/);
  // Explicit offsets given as an int64 tensor work too.
  const t = pachify(images, 4, { rowOffsets: tensor(new BigInt64Array([4n, 0n, 2n])), colOffsets: [1, 2, 3] });
  assert.deepEqual(t.patches.toArray(), naiveCrop(images.toArray(), 3, 3, 8, 4, [4, 0, 2], [1, 2, 3]));
});

// ---- reference parity ----------------------------------------------------------------------------

const haveRef = existsSync(`${REF}/patch_loss.safetensors`);

test('reference: crops and coordinates of patch_loss.safetensors reproduced exactly', { skip: haveRef ? false : `no reference vectors at ${REF}` }, () => {
  const { tensors: t } = readSafetensors(`${REF}/patch_loss.safetensors`);
  const get = (k: string): Tensor => t.get(k) ?? assert.fail(`missing ${k}`);
  const out = pachify(get('in.images'), 8, { rowOffsets: get('in.row_offsets'), colOffsets: get('in.col_offsets') });
  assert.deepEqual(out.patches.shape, get('out.patches').shape);
  assert.deepEqual(out.patches.toArray(), get('out.patches').toArray());
  assert.equal(out.xPos.dtype, 'float32');
  assert.deepEqual(out.xPos.shape, get('out.x_pos').shape);
  assert.deepEqual(out.xPos.toArray(), get('out.x_pos').toArray());
});

test('reference: the network cases\' patch coordinates and the sampler grid reproduced exactly', { skip: haveRef ? false : `no reference vectors at ${REF}` }, () => {
  const net = readSafetensors(`${REF}/net_ddpmpp.safetensors`);
  const offsets = JSON.parse(net.metadata.patch_offsets_row_col!) as [number, number][];
  const pos = patchCoordinates(offsets.map((o) => o[0]), offsets.map((o) => o[1]), 8, 16);
  assert.deepEqual(pos.toArray(), net.tensors.get('in.patch_x_pos')!.toArray());
  assert.deepEqual(fullCoordinateGrid(3, 16).toArray(), net.tensors.get('in.x_pos')!.toArray());
  const sampler = readSafetensors(`${REF}/sampler.safetensors`);
  assert.deepEqual(fullCoordinateGrid(2, 16).toArray(), sampler.tensors.get('in.x_pos')!.toArray());
});

test('no tensor leaks outside a scope: pachify frees its index tensors', () => {
  const images = new Generator(1).randn([6, 3, 16, 16]);
  const g = new Generator(2);
  for (const s of [4, 16]) {
    const before = liveTensorsAfterGc();
    const out = pachify(images, s, { generator: g });
    out.patches.dispose();
    out.xPos.dispose();
    assert.equal(liveTensors(), before, `patch size ${s}`);
  }
  assert.equal(images.isDisposed, false);
});
