// The built-in small Fashion-MNIST subsets (issue 30's data-efficiency study): fashion-mnist-500 ⊂
// fashion-mnist-2k ⊂ fashion-mnist-5k, one seeded permutation's first n, the same every load, every class present.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { BUILTIN_DATASETS, FASHION_MNIST_5K_SEED, FASHION_MNIST_SUBSETS, isBuiltinName, loadDataset } from '../src/data/builtin.js';
import { subsetIndices, type ImageDataset } from '../src/data/dataset.js';
import { FASHION_MNIST_DIR } from '../src/data/fashion-mnist.js';

test('the subsets are built-in names, described with their held-out part', () => {
  for (const name of ['fashion-mnist-500', 'fashion-mnist-2k', 'fashion-mnist-5k']) assert.ok(isBuiltinName(name), name);
  for (const name of ['fashion-mnist-500', 'fashion-mnist-2k'] as const) assert.match(BUILTIN_DATASETS[name], /test split/);
  assert.deepEqual(FASHION_MNIST_SUBSETS, { 'fashion-mnist-5k': 5000, 'fashion-mnist-2k': 2000, 'fashion-mnist-500': 500 });
  assert.equal(isBuiltinName('toString'), false);
});

test('subsetIndices on one seed keeps the first n of one permutation: 500 ⊂ 2k ⊂ 5k of 60,000', () => {
  const [i500, i2k, i5k] = [500, 2000, 5000].map((n) => subsetIndices(60_000, n, FASHION_MNIST_5K_SEED));
  assert.deepEqual([i500!.length, i2k!.length, i5k!.length], [500, 2000, 5000]);
  const in2k = new Set(i2k), in5k = new Set(i5k);
  assert.ok(i500!.every((i) => in2k.has(i)), '500 ⊂ 2k');
  assert.ok(i2k!.every((i) => in5k.has(i)), '2k ⊂ 5k');
  assert.deepEqual(subsetIndices(60_000, 500, FASHION_MNIST_5K_SEED), i500, 'deterministic');
});

const hash = (im: Uint8Array) => createHash('sha1').update(im).digest('hex');
const classCounts = (ds: ImageDataset) => {
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < ds.length; i++) counts[ds.label(i)!.indexOf(1)]!++;
  return counts;
};

describe('the real subsets (Debian package)', { timeout: 60_000 }, () => {
  const present = existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  test('sizes, nesting, determinism, every class', { skip: present ? false : `${FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)` }, async () => {
    const [d500, d2k, d5k] = await Promise.all(['fashion-mnist-500', 'fashion-mnist-2k', 'fashion-mnist-5k'].map((n) => loadDataset(n)));
    for (const [ds, n, name] of [[d500, 500, 'fashion-mnist-500'], [d2k, 2000, 'fashion-mnist-2k'], [d5k, 5000, 'fashion-mnist-5k']] as const) {
      assert.equal(ds!.length, n);
      assert.equal(ds!.name, name);
      assert.equal(ds!.resolution, 32);
      assert.equal(ds!.channels, 1);
      assert.equal(ds!.labelDim, 10);
      const counts = classCounts(ds!);
      assert.ok(counts.every((c) => c > 0), `${name}: every class present (${counts.join(' ')})`);
    }
    // Images with their labels: each of the smaller set's is in the larger one.
    const keys = (ds: ImageDataset) => new Set(Array.from({ length: ds.length }, (_, i) => `${hash(ds.image(i))}/${ds.label(i)!.indexOf(1)}`));
    const k2k = keys(d2k!), k5k = keys(d5k!);
    assert.ok([...keys(d500!)].every((k) => k2k.has(k)), 'fashion-mnist-500 ⊂ fashion-mnist-2k');
    assert.ok([...k2k].every((k) => k5k.has(k)), 'fashion-mnist-2k ⊂ fashion-mnist-5k');
    const again = await loadDataset('fashion-mnist-500');
    for (const i of [0, 123, 499]) assert.deepEqual(again.image(i), d500!.image(i), 'the same images on every load');
    const unlabelled = await loadDataset('fashion-mnist-2k', { labels: false });
    assert.equal(unlabelled.labelDim, 0);
    assert.deepEqual(unlabelled.image(1999), d2k!.image(1999));
  });
});
