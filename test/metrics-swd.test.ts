import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { laplacianPyramid, pyramidResolutions, slicedWassersteinDistance, sortFloat32, SwdDescriptors } from '../src/metrics/swd.js';
import type { ImageArray } from '../src/metrics/images.js';

test('Laplacian pyramid matches ProGAN (scipy.ndimage.convolve, mode=mirror) exactly', () => {
  // Reference values from ProGAN's generate_laplacian_pyramid on this 16×16 image (numpy/scipy).
  const x = Float32Array.from({ length: 256 }, (_, k) => {
    const i = Math.floor(k / 16);
    const j = k % 16;
    return (((i * 7 + j * 13) % 17) * 15) + ((i * j) % 5);
  });
  const l1Ref = [110.0156, 139.3516, 115.1094, 106.1406, 122.3281, 119.2188, 125.0547, 132.3203, 112.5156, 126.0117, 125.2461, 112.6445, 132.6797, 121.4648, 111.7148, 133.4336, 105.5, 122.5508, 129.457, 113.3555, 120.9648, 126.9727, 114.2305, 125.5781, 117.7422, 111.2383, 130.582, 117.8555, 117.9805, 128.7891, 115.8672, 121.8633, 117.2891, 114.6328, 125.5352, 125.2461, 113.1211, 131.8945, 122.25, 107.7383, 127.4219, 115.6641, 121.875, 129.375, 113.2617, 120.2734, 127.2656, 112.0898, 134.5469, 122.1445, 111.418, 130.6914, 118.8516, 117.5977, 129.7617, 115.6211, 138.4141, 126.5195, 112.3945, 124.3242, 123.8516, 114.9609, 135.1328, 126.4219];
  const row0Ref = [-116.9846, 71.6714, 4.452, -51.8301, -103.7056, 97.2949, 38.8551, -26.3413, -92.1304, 102.6519, 44.3353, -15.75, -77.8372, 112.8408, 48.7612, -12.5986];
  const row7Ref = [108.6294, 51.7744, -6.3984, -74.4971, 117.6453, 55.1953, 0.3857, -54.5508, -117.1497, 75.0537, 7.9175, -47.7002, -100.9368, 94.0703, 37.667, -24.8008];
  scope(() => {
    const [l0, l1] = laplacianPyramid(tensor(x, [1, 1, 16, 16]), 2) as [Tensor, Tensor];
    assert.deepEqual(l1.shape, [1, 1, 8, 8]);
    const close = (a: number[], b: number[]) => a.forEach((v, k) => assert.ok(Math.abs(v - b[k]!) < 1e-3, `${k}: ${v} vs ${b[k]}`));
    close(l1.toArray(), l1Ref);
    const v0 = l0.toArray();
    close(v0.slice(0, 16), row0Ref);
    close(v0.slice(7 * 16, 8 * 16), row7Ref);
  });
});

test('pyramid levels go down to 16', () => {
  assert.deepEqual(pyramidResolutions(64), [64, 32, 16]);
  assert.deepEqual(pyramidResolutions(32), [32, 16]);
  assert.deepEqual(pyramidResolutions(28), [28]);
  assert.deepEqual(pyramidResolutions(8), [8]);
});

/** Smooth synthetic images: random blobs on a gradient, uint8 [n, c, r, r]. */
function blobs(n: number, c: number, r: number, seed: number): Float32Array {
  const g = new Generator(seed);
  const p = g.rand([n, 6]).toArray();
  const out = new Float32Array(n * c * r * r);
  for (let i = 0; i < n; i++) {
    const [cx, cy, rad, a, b, tint] = p.slice(i * 6, i * 6 + 6) as [number, number, number, number, number, number];
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < r; y++)
        for (let x = 0; x < r; x++) {
          const dx = x / r - cx;
          const dy = y / r - cy;
          const inside = Math.exp(-(dx * dx + dy * dy) / (0.02 + 0.05 * rad));
          out[((i * c + ch) * r + y) * r + x] = 40 + 60 * a * (x / r) + 40 * b * (y / r) + 150 * inside * (ch === 0 ? 1 : tint);
        }
  }
  return out;
}

function toImages(values: Float32Array, n: number, c: number, r: number): ImageArray {
  return { data: Uint8Array.from(values, (v) => Math.max(0, Math.min(255, Math.round(v)))), count: n, channels: c, height: r, width: r };
}

for (const channels of [1, 3]) {
  test(`SWD (${channels} channel${channels > 1 ? 's' : ''}): 0 on identical sets, grows monotonically with noise`, () => {
    const n = 48;
    const r = 32;
    const base = blobs(n, channels, r, 1);
    const images = toImages(base, n, channels, r);
    const opts = { seed: 3, dirRepeats: 2, dirsPerRepeat: 32 };
    const same = slicedWassersteinDistance(images, toImages(base, n, channels, r), opts);
    assert.deepEqual(same.resolutions, [32, 16]);
    assert.equal(same.count, n);
    for (const v of same.levels) assert.equal(v, 0);
    // A different sample of the same distribution is close; noise of increasing strength moves it further.
    const g = new Generator(5);
    let previous = -1;
    const means: number[] = [];
    for (const sigma of [0, 4, 12, 32, 64]) {
      const noise = g.randn([base.length]).mul(sigma).toArray();
      const noisy = Float32Array.from(blobs(n, channels, r, 2), (v, k) => v + noise[k]!);
      const res = slicedWassersteinDistance(images, toImages(noisy, n, channels, r), opts);
      assert.ok(res.mean > previous, `σ=${sigma}: SWD ${res.mean} not above ${previous}`);
      assert.ok(res.levels[0]! > 0 && res.levels.every(Number.isFinite));
      previous = res.mean;
      means.push(res.mean);
    }
    assert.ok(means[means.length - 1]! > 3 * means[0]!, `noise effect too small: ${means.join(', ')}`);
  });
}

test('SWD is reproducible from its seed, independent of batching, and checks its inputs', () => {
  scope(() => {
    const n = 20;
    const a = toImages(blobs(n, 1, 16, 7), n, 1, 16);
    const b = toImages(blobs(n, 1, 16, 8), n, 1, 16);
    const r1 = slicedWassersteinDistance(a, b, { seed: 11, dirRepeats: 1, dirsPerRepeat: 16 });
    const r2 = slicedWassersteinDistance(a, b, { seed: 11, dirRepeats: 1, dirsPerRepeat: 16 });
    assert.deepEqual(r1.levels, r2.levels);
    // Feeding the same images in different batches gives the same descriptors.
    const d1 = new SwdDescriptors(16, 1, { seed: 11 });
    const d2 = new SwdDescriptors(16, 1, { seed: 11 });
    d1.addArray(a, 20);
    d2.addArray(a, 3);
    const [f1] = d1.finalize();
    const [f2] = d2.finalize();
    assert.deepEqual(f1!.shape, [20 * 128, 49]);
    assert.equal(f1!.sub(f2!).abs().amax().item(), 0);
    d1.dispose();
    d2.dispose();
    assert.throws(() => slicedWassersteinDistance(a, { ...b, count: 10, data: b.data.subarray(0, 10 * 256) }), /same number of images/);
  });
});

test('the radix sort used for projections sorts float32 exactly like a comparison sort', () => {
  const g = new Generator(12);
  const v = Float32Array.from([...g.randn([5000]).mul(1e3).toArray(), 0, -0, 1e-40, -1e-40, Infinity, -Infinity, 3.4e38, -3.4e38, 1, 1, -1]);
  const expected = Array.from(v).sort((a, b) => a - b);
  const got = Array.from(sortFloat32(Float32Array.from(v)));
  assert.deepEqual(got.map((x) => (Object.is(x, -0) ? 0 : x)), expected.map((x) => (Object.is(x, -0) ? 0 : x)));
});
