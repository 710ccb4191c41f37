import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArrayDataset } from '../src/data/dataset.js';
import { Generator } from '../src/tensor/index.js';
import { computeMetrics, formatReport } from '../src/metrics/evaluate.js';
import { DEFAULT_CLASSIFIER_PATH } from '../src/metrics/classifier.js';
import { sliceImages, type ImageArray } from '../src/metrics/images.js';
import { metricsCommand } from '../src/cli/commands/metrics.js';

const R = 32;

/** Grey 32×32 "garments": a bright blob on a dark background, with optional noise. */
function images(n: number, seed: number, noise = 0): ImageArray {
  const g = new Generator(seed);
  const p = g.rand([n, 4]).toArray();
  const z = noise ? g.randn([n * R * R]).mul(noise).toArray() : null;
  const data = new Uint8Array(n * R * R);
  for (let i = 0; i < n; i++) {
    const [cx, cy, w, h] = [0.35 + 0.3 * p[i * 4]!, 0.35 + 0.3 * p[i * 4 + 1]!, 0.1 + 0.2 * p[i * 4 + 2]!, 0.1 + 0.25 * p[i * 4 + 3]!];
    for (let y = 0; y < R; y++)
      for (let x = 0; x < R; x++) {
        const k = i * R * R + y * R + x;
        const v = 220 * Math.exp(-(((x / R - cx) / w) ** 2) - ((y / R - cy) / h) ** 2) + (z ? z[k]! : 0);
        data[k] = Math.max(0, Math.min(255, Math.round(v)));
      }
  }
  return { data, count: n, channels: 1, height: R, width: R };
}

const haveClassifier = existsSync(DEFAULT_CLASSIFIER_PATH);

test('computeMetrics: classifier FD/KID and SWD rank a corrupted set worse, cache and stats-file references', { skip: !haveClassifier && 'models/fashion-mnist-classifier.safetensors is not built' }, async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'pd-metrics-cache-'));
  try {
    const ref = new ArrayDataset({ name: 'blobs', resolution: R, channels: 1, pixels: images(600, 1).data });
    const common = { reference: ref, metrics: ['fd-classifier', 'kid-classifier', 'swd'] as const, seed: 5, cacheDir, device: 'cpu' as const, kid: { subsets: 20 } };
    const good = await computeMetrics({ ...common, generated: images(200, 2) });
    const bad = await computeMetrics({ ...common, generated: images(200, 3, 40) });
    for (const r of [good, bad]) {
      assert.equal(r.generated.count, 200);
      assert.equal(r.reference.count, 600);
      assert.equal(r.reference.swdCount, 200);
      assert.equal(r.seed, 5);
      assert.ok(r.networks['fashion-mnist-classifier']?.sha256.length === 64);
      assert.equal(r.metrics['kid-classifier']!.subsets, 20);
      assert.equal(r.metrics['kid-classifier']!.subsetSize, 200);
      assert.deepEqual(r.metrics.swd!.resolutions, [32, 16]);
    }
    const m0 = good.metrics;
    const m1 = bad.metrics;
    assert.ok(m1['fd-classifier']! > 2 * m0['fd-classifier']!, `FD ${m0['fd-classifier']} vs ${m1['fd-classifier']}`);
    assert.ok(m1['kid-classifier']!.mean > m0['kid-classifier']!.mean + 3 * m1['kid-classifier']!.std);
    assert.ok(m1.swd!.mean > 2 * m0.swd!.mean, `SWD ${m0.swd!.mean} vs ${m1.swd!.mean}`);
    assert.equal(good.reference.source, 'dataset');
    assert.equal(bad.reference.source, 'cache');
    assert.ok(formatReport(good).includes('fd-classifier'));

    // Batches (async) give the same figures as one array, and the cached reference gives the same FD.
    async function* batches() {
      const all = images(200, 2);
      for (let s = 0; s < 200; s += 64) yield sliceImages(all, s, s + 64);
    }
    const again = await computeMetrics({ ...common, generated: batches() });
    assert.equal(again.reference.source, 'cache');
    // (Batch size changes float32 convolution round-off, hence "close" rather than equal for the classifier figures.)
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b), `${a} vs ${b}`);
    close(again.metrics['fd-classifier']!, m0['fd-classifier']!);
    close(again.metrics['kid-classifier']!.mean, m0['kid-classifier']!.mean);
    assert.deepEqual(again.metrics.swd, m0.swd);

    // The cache file works as a reference on its own.
    const statsFile = good.reference.statsFiles[0]!;
    assert.ok(existsSync(statsFile));
    const fromFile = await computeMetrics({ generated: images(200, 2), reference: statsFile, metrics: ['fd-classifier', 'kid-classifier'], seed: 5, device: 'cpu', kid: { subsets: 20 } });
    assert.equal(fromFile.reference.source, 'stats-file');
    assert.equal(fromFile.metrics['fd-classifier'], m0['fd-classifier']); // same batches, same statistics
    await assert.rejects(computeMetrics({ generated: images(10, 2), reference: statsFile, metrics: ['swd'] }), /SWD needs reference images/);
    await assert.rejects(computeMetrics({ generated: images(10, 2), reference: ref, metrics: ['fid-inception'], cacheDir: null }), /need Inception weights/);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('metrics command: folder of PNGs against a folder reference, JSON line out', { skip: !haveClassifier && 'classifier not built' }, async () => {
  const { encodePng } = await import('../src/io/images.js');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const root = mkdtempSync(join(tmpdir(), 'pd-metrics-cli-'));
  try {
    const write = async (dir: string, imgs: ImageArray) => {
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < imgs.count; i++)
        writeFileSync(join(dir, `${String(i).padStart(6, '0')}.png`), await encodePng(imgs.data.subarray(i * R * R, (i + 1) * R * R), R, R, 1));
    };
    await write(join(root, 'gen'), images(40, 2));
    await write(join(root, 'ref'), images(80, 1));
    const out = join(root, 'metrics.jsonl');
    const log = console.log;
    const printed: string[] = [];
    console.log = (...a: unknown[]) => void printed.push(a.join(' '));
    try {
      await metricsCommand()
        .exitOverride()
        .parseAsync(
          ['--images', join(root, 'gen'), '--ref', join(root, 'ref'), '--metrics', 'fd,kid,swd', '--num', '30', '--seed', '3', '--kid-subsets', '5', '--out', out, '--no-cache', '--device', 'cpu', '--quiet'],
          { from: 'user' },
        );
    } finally {
      console.log = log;
    }
    const line = JSON.parse(readFileSync(out, 'utf8').trim()) as { generated: { count: number }; seed: number; metrics: Record<string, unknown> };
    assert.equal(line.generated.count, 30);
    assert.equal(line.seed, 3);
    assert.ok(typeof line.metrics['fd-classifier'] === 'number');
    assert.ok(line.metrics.swd && line.metrics['kid-classifier']);
    assert.ok(printed.join('\n').includes('swd'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
