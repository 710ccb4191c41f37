// IDX parsing on generated files, padding, the loader on a fake install, and
// (when the Debian package is present) the real training set.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  ensureFashionMnist,
  loadFashionMnist,
  parseIdxImages,
  parseIdxLabels,
  readMaybeGzip,
} from '../src/data/fashion-mnist.js';
import { padImages } from '../src/data/resize.js';
import { DatasetError } from '../src/data/errors.js';
import { loadDataset } from '../src/data/builtin.js';

// ---- fixture generators: IDX files as the format describes them ----------

function idxImages(count: number, rows: number, cols: number, pixel: (i: number, y: number, x: number) => number): Buffer {
  const buf = Buffer.alloc(16 + count * rows * cols);
  buf.writeUInt32BE(2051, 0);
  buf.writeUInt32BE(count, 4);
  buf.writeUInt32BE(rows, 8);
  buf.writeUInt32BE(cols, 12);
  for (let i = 0; i < count; i++) for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) buf[16 + (i * rows + y) * cols + x] = pixel(i, y, x);
  return buf;
}

function idxLabels(labels: number[]): Buffer {
  const buf = Buffer.alloc(8 + labels.length);
  buf.writeUInt32BE(2049, 0);
  buf.writeUInt32BE(labels.length, 4);
  labels.forEach((l, i) => (buf[8 + i] = l));
  return buf;
}

/** A fake install: n train and m test images, pixel = 1 + (i + y + x) % 250 (never 0), labels i % 10. */
async function fakeInstall(dir: string, nTrain: number, nTest: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const px = (i: number, y: number, x: number) => 1 + ((i + y + x) % 250);
  const lbl = (n: number, off: number) => Array.from({ length: n }, (_, i) => (i + off) % 10);
  await fsp.writeFile(path.join(dir, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(idxImages(nTrain, 28, 28, px)));
  await fsp.writeFile(path.join(dir, 'train-labels-idx1-ubyte.gz'), zlib.gzipSync(idxLabels(lbl(nTrain, 0))));
  await fsp.writeFile(path.join(dir, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(idxImages(nTest, 28, 28, (i, y, x) => px(i + 1000, y, x))));
  await fsp.writeFile(path.join(dir, 't10k-labels-idx1-ubyte.gz'), zlib.gzipSync(idxLabels(lbl(nTest, 3))));
}

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pd-data-fmnist-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('IDX parsing', () => {
  test('images and labels, header fields and data', () => {
    const img = parseIdxImages(idxImages(3, 2, 4, (i, y, x) => i * 8 + y * 4 + x));
    assert.equal(img.count, 3);
    assert.equal(img.rows, 2);
    assert.equal(img.cols, 4);
    assert.deepEqual([...img.pixels], Array.from({ length: 24 }, (_, k) => k));
    assert.deepEqual([...parseIdxLabels(idxLabels([4, 0, 9]))], [4, 0, 9]);
  });

  test('wrong magic, truncated data, truncated header, trailing bytes: clear errors', () => {
    const good = idxImages(3, 2, 2, () => 1);
    assert.throws(() => parseIdxLabels(good, 'x-images'), /x-images: bad IDX magic number 2051, expected 2049/);
    assert.throws(() => parseIdxImages(idxLabels([1, 2]), 'y-labels'), /y-labels: bad IDX magic number 2049, expected 2051/);
    assert.throws(() => parseIdxImages(good.subarray(0, good.length - 1), 'cut'), (e: unknown) => e instanceof DatasetError && /cut: IDX file is truncated: header promises 12 data bytes, found 11/.test(e.message));
    assert.throws(() => parseIdxImages(good.subarray(0, 10), 'head'), /head: IDX file is truncated \(10 bytes, the header alone needs 16\)/);
    assert.throws(() => parseIdxLabels(Buffer.concat([idxLabels([1]), Buffer.from([0])]), 'tail'), /tail: IDX file has 1 unexpected trailing bytes/);
  });

  test('gzip: plain files pass through; a truncated .gz names the file', async () => {
    const raw = idxLabels([1, 2, 3]);
    const plain = path.join(tmp, 'plain-idx1');
    await fsp.writeFile(plain, raw);
    assert.deepEqual(Buffer.from(await readMaybeGzip(plain)), raw);
    const gz = zlib.gzipSync(idxImages(20, 28, 28, (i) => i));
    const cut = path.join(tmp, 'cut-idx3.gz');
    await fsp.writeFile(cut, gz.subarray(0, gz.length >> 1));
    await assert.rejects(readMaybeGzip(cut), /cut-idx3\.gz: gzip data is truncated or corrupt/);
  });
});

describe('padding', () => {
  test('28→32 puts zeros in a 2-pixel border and the image in the middle', () => {
    const src = new Uint8Array(2 * 28 * 28).fill(200);
    const out = padImages(src, 2, 1, 28, 32, 0);
    assert.equal(out.length, 2 * 32 * 32);
    for (let i = 0; i < 2; i++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const border = y < 2 || y >= 30 || x < 2 || x >= 30;
          assert.equal(out[i * 1024 + y * 32 + x], border ? 0 : 200, `image ${i} (${x},${y})`);
        }
      }
    }
  });
});

describe('loadFashionMnist on a generated install', { timeout: 20_000 }, () => {
  test('splits, padding, labels, class names, limit/seed', async () => {
    const dir = path.join(tmp, 'fake');
    await fakeInstall(dir, 30, 12);
    const train = await loadFashionMnist({ dir });
    assert.equal(train.name, 'fashion-mnist');
    assert.equal(train.length, 30);
    assert.equal(train.resolution, 32);
    assert.equal(train.channels, 1);
    assert.equal(train.labelDim, 10);
    assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
    assert.match(train.notice ?? '', /Zalando/);
    const im = train.image(7);
    // Border zeros, interior = source pixel shifted by 2.
    assert.equal(im[0], 0);
    assert.equal(im[1 * 32 + 31], 0);
    assert.equal(im[31 * 32 + 5], 0);
    assert.equal(im[(2 + 3) * 32 + (2 + 4)], 1 + ((7 + 3 + 4) % 250));
    assert.deepEqual([...train.label(7)!], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);

    const raw = await loadFashionMnist({ dir, resolution: 28, split: 'test' });
    assert.equal(raw.resolution, 28);
    assert.equal(raw.length, 12);
    assert.equal(raw.image(0)[0], 1 + (1000 % 250));
    assert.deepEqual([...raw.label(0)!].indexOf(1), 3);

    const all = await loadFashionMnist({ dir, split: 'all', labels: false });
    assert.equal(all.length, 42);
    assert.equal(all.labelDim, 0);
    assert.deepEqual(all.image(30), (await loadFashionMnist({ dir, split: 'test' })).image(0), "'all' is train then test");
    assert.deepEqual(all.image(29), train.image(29));

    const sub = await loadFashionMnist({ dir, limit: 10, seed: 3 });
    const sub2 = await loadFashionMnist({ dir, limit: 10, seed: 3 });
    assert.equal(sub.length, 10);
    for (let i = 0; i < 10; i++) assert.deepEqual(sub.image(i), sub2.image(i));
    const other = await loadFashionMnist({ dir, limit: 10, seed: 4 });
    assert.ok(Array.from({ length: 10 }, (_, i) => other.image(i).join()).join() !== Array.from({ length: 10 }, (_, i) => sub.image(i).join()).join());

    const small = await loadFashionMnist({ dir, resolution: 16, limit: 2 });
    assert.equal(small.resolution, 16);
    assert.equal(small.image(0).length, 256);
  });

  test('missing files and a truncated install give clear errors, never an install outside the default dir', async () => {
    const empty = path.join(tmp, 'empty');
    await fsp.mkdir(empty);
    assert.throws(() => ensureFashionMnist(empty), /Fashion-MNIST files missing in .*empty: train-images-idx3-ubyte\.gz/);
    await assert.rejects(loadFashionMnist({ dir: empty }), DatasetError);
    const dir = path.join(tmp, 'broken');
    await fakeInstall(dir, 5, 5);
    const labels = zlib.gzipSync(idxLabels([1, 2, 3]));
    await fsp.writeFile(path.join(dir, 'train-labels-idx1-ubyte.gz'), labels);
    await assert.rejects(loadFashionMnist({ dir }), /5 images in .* but 3 labels/);
    await fsp.writeFile(path.join(dir, 'train-labels-idx1-ubyte.gz'), zlib.gzipSync(idxLabels([1, 2, 3, 4, 12])));
    await assert.rejects(loadFashionMnist({ dir }), /label 12 at index 4 is not a Fashion-MNIST class/);
    const gz = zlib.gzipSync(idxImages(5, 28, 28, () => 1));
    await fsp.writeFile(path.join(dir, 'train-images-idx3-ubyte.gz'), gz.subarray(0, gz.length - 8));
    await assert.rejects(loadFashionMnist({ dir }), /train-images-idx3-ubyte\.gz: gzip data is truncated/);
  });
});

describe('the real Fashion-MNIST (Debian package)', { timeout: 20_000 }, () => {
  const present = existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  test('train set: 60000 images 32×32, labels 0..9, balanced', { skip: present ? false : `${FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)` }, async () => {
    const ds = await loadDataset('fashion-mnist');
    assert.equal(ds.length, 60_000);
    assert.equal(ds.resolution, 32);
    assert.equal(ds.channels, 1);
    assert.equal(ds.labelDim, 10);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < ds.length; i++) counts[ds.label(i)!.indexOf(1)]!++;
    assert.deepEqual(counts, new Array(10).fill(6000));
    let borderSum = 0;
    let interior = 0;
    for (let i = 0; i < 100; i++) {
      const im = ds.image(i);
      for (let k = 0; k < 32; k++) borderSum += im[k]! + im[32 + k]! + im[k * 32]! + im[k * 32 + 31]!;
      for (let k = 0; k < 1024; k++) interior += im[k]!;
    }
    assert.equal(borderSum, 0, 'padding is zero');
    assert.ok(interior > 0, 'images are not blank');

    const k5 = await loadDataset('fashion-mnist-5k');
    const k5b = await loadDataset('fashion-mnist-5k');
    assert.equal(k5.length, 5000);
    assert.equal(k5.name, 'fashion-mnist-5k');
    assert.deepEqual(k5.image(4999), k5b.image(4999));
    const test10k = await loadFashionMnist({ split: 'test', resolution: 28 });
    assert.equal(test10k.length, 10_000);
    assert.equal(test10k.resolution, 28);
  });
});
