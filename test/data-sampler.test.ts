// PRNG, subsets, the resumable sampler, and batch filling with x-flip.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, permutation, splitmix32 } from '../src/data/rng.js';
import { ArrayDataset, flipX, oneHot, subset, subsetIndices, withChannels, withoutLabels } from '../src/data/dataset.js';
import { BatchLoader, InfiniteSampler, batchFiller, fillBatch, type SamplerState } from '../src/data/sampler.js';

function draw(r: Rng, n: number): number[] {
  return Array.from({ length: n }, () => r.nextU32());
}

/** n images of side res; pixel (c, y, x) of image i = (i*31 + c*7 + y*res + x) & 255, classes i % 3. */
function makeDataset(n: number, channels: 1 | 3, res: number, labelled = true): ArrayDataset {
  const pixels = new Uint8Array(n * channels * res * res);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < res; y++) for (let x = 0; x < res; x++) pixels[((i * channels + c) * res + y) * res + x] = (i * 31 + c * 7 + y * res + x) & 255;
    }
  }
  const classes = Array.from({ length: n }, (_, i) => i % 3);
  return new ArrayDataset({ name: 't', resolution: res, channels, pixels, labels: labelled ? oneHot(classes, 3) : null, labelDim: labelled ? 3 : 0 });
}

describe('Rng', () => {
  test('deterministic per (seed, stream); different seeds/streams differ', () => {
    assert.deepEqual(draw(new Rng(42), 10), draw(new Rng(42), 10));
    assert.notDeepEqual(draw(new Rng(42), 10), draw(new Rng(43), 10));
    assert.notDeepEqual(draw(new Rng(42, 0), 10), draw(new Rng(42, 1), 10));
    // Seeds above 2^32 must not alias their low 32 bits.
    assert.notDeepEqual(draw(new Rng(2 ** 32 + 5), 10), draw(new Rng(5), 10));
    assert.equal(splitmix32(0), splitmix32(0));
    assert.throws(() => new Rng(-1), RangeError);
    assert.throws(() => new Rng(1.5), RangeError);
  });

  test('xoshiro128** core matches the reference sequence for state [1, 2, 3, 4]', () => {
    // Computed independently from Blackman & Vigna's C reference (xoshiro128starstar.c).
    assert.deepEqual(draw(Rng.fromState({ s: [1, 2, 3, 4] }), 6), [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test('golden values pin the seeding (a change would silently change every data order and subset)', () => {
    assert.deepEqual(draw(new Rng(2024), 3), [587934854, 274331190, 529846644]);
  });

  test('state round-trips through JSON', () => {
    const r = new Rng(7);
    draw(r, 5);
    const saved = JSON.parse(JSON.stringify(r.getState())) as ReturnType<Rng['getState']>;
    const expected = draw(r, 20);
    const r2 = Rng.fromState(saved);
    assert.deepEqual(draw(r2, 20), expected);
    assert.throws(() => r2.setState({ s: [0, 0, 0, 0] }), /all-zero/);
    assert.throws(() => r2.setState({ s: [1, 2, 3] } as unknown as ReturnType<Rng['getState']>), /four uint32/);
  });

  test('nextInt is in range and roughly uniform; nextFloat in [0,1)', () => {
    const r = new Rng(1);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.nextInt(6)]!++;
    for (const c of counts) assert.ok(c > 9_500 && c < 10_500, `count ${c}`);
    for (let i = 0; i < 1000; i++) {
      const f = r.nextFloat();
      assert.ok(f >= 0 && f < 1);
    }
    assert.throws(() => r.nextInt(0), RangeError);
  });

  test('permutation is a permutation', () => {
    const p = permutation(1000, 3);
    assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
    assert.notDeepEqual([...p.subarray(0, 20)], Array.from({ length: 20 }, (_, i) => i));
  });
});

describe('subset', () => {
  test('fixed, seeded, sorted, deterministic; n >= length keeps all', () => {
    const ds = makeDataset(100, 1, 2);
    const a = subsetIndices(100, 10, 5);
    assert.deepEqual(a, subsetIndices(100, 10, 5));
    assert.notDeepEqual(a, subsetIndices(100, 10, 6));
    assert.equal(new Set(a).size, 10);
    assert.deepEqual([...a], [...a].sort((x, y) => x - y));
    const s = subset(ds, 10, 5);
    assert.equal(s.length, 10);
    assert.equal(s.labelDim, 3);
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(s.image(i), ds.image(a[i]!));
      assert.deepEqual(s.label(i), ds.label(a[i]!));
    }
    assert.equal(subset(ds, 100, 1), ds);
    assert.equal(subset(ds, 1000, 1), ds);
    assert.throws(() => subset(ds, 0, 1), RangeError);
  });

  test('withoutLabels / withChannels', () => {
    const ds = makeDataset(4, 1, 3);
    const u = withoutLabels(ds);
    assert.equal(u.labelDim, 0);
    assert.equal(u.label(2), null);
    assert.deepEqual(u.image(2), ds.image(2));
    const rgb = withChannels(ds, 3);
    assert.equal(rgb.channels, 3);
    const im = rgb.image(1);
    assert.deepEqual(im.subarray(0, 9), ds.image(1));
    assert.deepEqual(im.subarray(18, 27), ds.image(1));
    assert.deepEqual(rgb.label(1), ds.label(1));
  });
});

describe('InfiniteSampler', () => {
  test('same seed → same stream; each epoch is a permutation; epochs differ', () => {
    const a = new InfiniteSampler(50, { seed: 9 });
    const b = new InfiniteSampler(50, { seed: 9 });
    const sa = [...a.nextBatch(150)];
    assert.deepEqual(sa, [...b.nextBatch(150)]);
    assert.notDeepEqual(sa, [...new InfiniteSampler(50, { seed: 10 }).nextBatch(150)]);
    const range = Array.from({ length: 50 }, (_, i) => i);
    for (let e = 0; e < 3; e++) assert.deepEqual(sa.slice(50 * e, 50 * e + 50).sort((x, y) => x - y), range, `epoch ${e}`);
    assert.notDeepEqual(sa.slice(0, 50), sa.slice(50, 100));
    assert.equal(a.epochsDone, 3);
  });

  test('getState/setState resumes exactly (through JSON), across epoch boundaries', () => {
    const s = new InfiniteSampler(37, { seed: 123, xflip: true });
    s.nextBatch(50);
    const saved = JSON.parse(JSON.stringify(s.getState())) as SamplerState;
    const m1 = [...s.nextBatch(100)];
    // Restore into the same sampler...
    s.setState(saved);
    assert.deepEqual([...s.nextBatch(100)], m1);
    // ...and into a fresh one, as after a process restart.
    const fresh = InfiniteSampler.fromState(saved);
    assert.deepEqual([...fresh.nextBatch(100)], m1);
    const other = new InfiniteSampler(37, { seed: 123, xflip: true });
    other.setState(saved);
    assert.deepEqual([...other.nextBatch(100)], m1);
    assert.ok(JSON.stringify(saved).length < 200, 'state is small');
  });

  test('setState refuses a state for other settings', () => {
    const saved = new InfiniteSampler(10, { seed: 1 }).getState();
    assert.throws(() => new InfiniteSampler(11, { seed: 1 }).setState(saved), /length 10 \(saved\) vs 11/);
    assert.throws(() => new InfiniteSampler(10, { seed: 2 }).setState(saved), /seed/);
    assert.throws(() => new InfiniteSampler(10, { seed: 1, xflip: true }).setState(saved), /xflip/);
    assert.throws(() => new InfiniteSampler(10).setState({} as SamplerState), /version-1/);
  });

  test('x-flip doubles the index space; every copy appears once per epoch', () => {
    const s = new InfiniteSampler(20, { seed: 4, xflip: true });
    assert.equal(s.size, 40);
    const e = [...s.nextBatch(40)].sort((x, y) => x - y);
    assert.deepEqual(e, Array.from({ length: 40 }, (_, i) => i));
    const noFlip = new InfiniteSampler(20, { seed: 4 });
    assert.ok([...noFlip.nextBatch(200)].every((i) => i < 20));
  });

  test('ranks split one global stream without overlap', () => {
    const global = [...new InfiniteSampler(30, { seed: 8 }).nextBatch(60)];
    const r0 = [...new InfiniteSampler(30, { seed: 8, rank: 0, worldSize: 2 }).nextBatch(30)];
    const r1 = [...new InfiniteSampler(30, { seed: 8, rank: 1, worldSize: 2 }).nextBatch(30)];
    assert.deepEqual(r0, global.filter((_, k) => k % 2 === 0));
    assert.deepEqual(r1, global.filter((_, k) => k % 2 === 1));
    assert.throws(() => new InfiniteSampler(30, { rank: 2, worldSize: 2 }), RangeError);
  });

  test('shuffle: false walks in order', () => {
    assert.deepEqual([...new InfiniteSampler(3, { shuffle: false }).nextBatch(7)], [0, 1, 2, 0, 1, 2, 0]);
  });
});

describe('fillBatch', () => {
  test('copies images and labels; index >= length is the mirrored copy with the same label', () => {
    const ds = makeDataset(5, 3, 4);
    const b = fillBatch(ds, [2, 7, 0]);
    const size = 3 * 16;
    assert.equal(b.images.length, 3 * size);
    assert.deepEqual(b.images.subarray(0, size), ds.image(2));
    const flipped = b.images.subarray(size, 2 * size);
    const src = ds.image(2);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) assert.equal(flipped[(c * 4 + y) * 4 + x], src[(c * 4 + y) * 4 + (3 - x)], `mirrored pixel c${c} y${y} x${x}`);
      }
    }
    assert.notDeepEqual(flipped, src);
    assert.deepEqual(b.labels!.subarray(0, 3), ds.label(2));
    assert.deepEqual(b.labels!.subarray(3, 6), ds.label(2), 'flipped copy keeps its label');
    assert.deepEqual(b.labels!.subarray(6, 9), ds.label(0));
    // Flipping twice is the identity; the dataset itself is not modified.
    assert.deepEqual(flipX(flipX(src, 3, 4), 3, 4), src);
    assert.deepEqual(ds.image(2), makeDataset(5, 3, 4).image(2));
    assert.throws(() => fillBatch(ds, [10]), RangeError);
    assert.equal(fillBatch(makeDataset(2, 1, 2, false), [0, 1]).labels, null);
  });

  test('batchFiller and BatchLoader: resumable batches', () => {
    const ds = makeDataset(9, 1, 3);
    const fill = batchFiller(ds);
    assert.deepEqual(fill([1]).images, ds.image(1));
    const loader = new BatchLoader(ds, { seed: 5, xflip: true });
    loader.next(4);
    const st = loader.getState();
    const next = loader.next(6);
    loader.setState(st);
    const again = loader.next(6);
    assert.deepEqual(again.indices, next.indices);
    assert.deepEqual(again.images, next.images);
    assert.deepEqual(again.labels, next.labels);
  });
});
