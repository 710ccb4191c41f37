// Reading folders/zips of images: modes, geometry, labels, and every kind of bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import sharp from 'sharp';
import yazl from 'yazl';
import { centerCropBox, readImages, isImageFile, parseDatasetJson } from '../src/data/images.js';
import { DatasetError } from '../src/data/errors.js';
import { rgbToGrey } from '../src/data/dataset.js';

// ---- fixture generators -------------------------------------------------

/** Encode HWC raw pixels as PNG (channels 1 stays grey, 2 = grey+alpha). */
async function png(width: number, height: number, channels: 1 | 2 | 3 | 4, fill: (x: number, y: number, c: number) => number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) raw[(y * width + x) * channels + c] = fill(x, y, c);
  let img = sharp(raw, { raw: { width, height, channels } });
  if (channels <= 2) img = img.toColourspace('b-w');
  return img.png().toBuffer();
}

async function jpeg(width: number, height: number, rgb: [number, number, number], grey = false): Promise<Buffer> {
  let img = sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  if (grey) img = img.toColourspace('b-w');
  return img.jpeg({ quality: 95 }).toBuffer();
}

async function writeFiles(dir: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [rel, data] of Object.entries(files)) {
    const full = path.join(dir, rel);
    await fsp.mkdir(path.dirname(full), { recursive: true });
    await fsp.writeFile(full, data);
  }
}

async function writeZip(file: string, files: Record<string, Buffer | string>): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const [rel, data] of Object.entries(files)) zip.addBuffer(Buffer.from(data), rel);
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
}

/** Pixel (c, y, x) of a CHW image. */
function px(img: Uint8Array, res: number, c: number, y: number, x: number): number {
  return img[(c * res + y) * res + x]!;
}

let tmp: string;
let n = 0;
async function freshDir(): Promise<string> {
  const d = path.join(tmp, `case${n++}`);
  await fsp.mkdir(d, { recursive: true });
  return d;
}

async function rejectsNaming(p: Promise<unknown>, pattern: RegExp): Promise<DatasetError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof DatasetError, `expected a DatasetError, got ${String(caught)}`);
  assert.match((caught as Error).message, pattern);
  return caught as DatasetError;
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pd-data-images-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

// ---- tests ----------------------------------------------------------------

describe('readImages: modes and geometry', { timeout: 20_000 }, () => {
  test('centre crop of a wide image keeps the centred square (EDM offsets)', async () => {
    const dir = await freshDir();
    // 40×20: left quarter red, right quarter blue, middle half green.
    const rgb = (x: number, _y: number, c: number) => (x < 10 ? [255, 0, 0] : x >= 30 ? [0, 0, 255] : [0, 255, 0])[c]!;
    // A grey ramp: value 5*x, so each output column tells which source column it came from.
    const ramp = (x: number) => 5 * x;
    await writeFiles(dir, { 'a-wide.png': await png(40, 20, 3, rgb) });
    const { dataset } = await readImages(dir, { resolution: 20 });
    assert.equal(dataset.channels, 3);
    assert.equal(dataset.resolution, 20);
    const img = dataset.image(0);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        assert.deepEqual([px(img, 20, 0, y, x), px(img, 20, 1, y, x), px(img, 20, 2, y, x)], [0, 255, 0], `pixel (${x},${y}) must be from the green middle`);
      }
    }
    const dir2 = await freshDir();
    await writeFiles(dir2, { 'ramp.png': await png(41, 20, 1, ramp), 'tall.png': await png(20, 41, 1, (_x, y) => 5 * y) });
    const r2 = await readImages(dir2, { resolution: 20 });
    assert.equal(r2.dataset.channels, 1);
    // 41 wide, square 20: left = floor(21/2) = 10, so output column x is source column x+10.
    assert.deepEqual(centerCropBox(41, 20), { left: 10, top: 0, size: 20 });
    const ramped = r2.dataset.image(0);
    for (let x = 0; x < 20; x++) assert.equal(px(ramped, 20, 0, 7, x), 5 * (x + 10));
    const tall = r2.dataset.image(1);
    for (let y = 0; y < 20; y++) assert.equal(px(tall, 20, 0, y, 3), 5 * (y + 10));
  });

  test('mixed PNG/JPEG, grey/RGB/RGBA, sizes → one resolution; alpha on white; default channels', async () => {
    const dir = await freshDir();
    await writeFiles(dir, {
      'a-grey.png': await png(16, 16, 1, () => 100),
      // RGBA: left half fully transparent (→ white), right half opaque dark red.
      'b-rgba.png': await png(32, 32, 4, (x, _y, c) => (x < 16 ? [0, 0, 0, 0] : [128, 0, 0, 255])[c]!),
      'c-rgb.jpg': await jpeg(48, 24, [20, 200, 40]),
      'd-greyalpha.png': await png(8, 8, 2, (_x, _y, c) => (c === 0 ? 0 : 0)), // fully transparent black → white
      'sub/e-grey.jpeg': await jpeg(12, 12, [90, 90, 90], true),
      'README.txt': 'not an image, ignored',
      'notes.json': '{}',
    });
    const progress: [number, number][] = [];
    const { dataset, files, skipped } = await readImages(dir, { resolution: 8, onProgress: (d, t) => progress.push([d, t]) });
    assert.deepEqual(files, ['a-grey.png', 'b-rgba.png', 'c-rgb.jpg', 'd-greyalpha.png', 'sub/e-grey.jpeg']);
    assert.deepEqual(progress.at(-1), [5, 5], 'progress reaches the total');
    assert.equal(progress.length, 5);
    assert.equal(skipped.length, 0);
    assert.equal(dataset.length, 5);
    assert.equal(dataset.resolution, 8);
    assert.equal(dataset.channels, 3, 'any colour image makes the default RGB');
    assert.equal(dataset.labelDim, 0);
    assert.equal(dataset.label(0), null);
    for (let i = 0; i < dataset.length; i++) assert.equal(dataset.image(i).length, 3 * 64);
    // Grey 100 repeated to RGB, constant image stays constant after Lanczos.
    const g = dataset.image(0);
    for (let c = 0; c < 3; c++) assert.equal(px(g, 8, c, 4, 4), 100);
    // RGBA: transparent left → white, opaque right → (128, 0, 0); away from the seam.
    const rgba = dataset.image(1);
    assert.deepEqual([px(rgba, 8, 0, 4, 0), px(rgba, 8, 1, 4, 0), px(rgba, 8, 2, 4, 0)], [255, 255, 255]);
    assert.deepEqual([px(rgba, 8, 0, 4, 7), px(rgba, 8, 1, 4, 7), px(rgba, 8, 2, 4, 7)], [128, 0, 0]);
    // JPEG is lossy: close to the fill colour.
    const j = dataset.image(2);
    assert.ok(Math.abs(px(j, 8, 0, 4, 4) - 20) <= 3 && Math.abs(px(j, 8, 1, 4, 4) - 200) <= 3 && Math.abs(px(j, 8, 2, 4, 4) - 40) <= 3);
    // Grey+alpha fully transparent → white.
    assert.equal(px(dataset.image(3), 8, 1, 2, 2), 255);
    assert.ok(Math.abs(px(dataset.image(4), 8, 2, 5, 5) - 90) <= 2);
  });

  test('grey-only folder defaults to 1 channel; channels option converts with PIL luma', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'x.png': await png(4, 4, 1, (x, y) => 10 * (x + 4 * y)), 'y.png': await png(4, 4, 1, () => 7) });
    const grey = await readImages(dir);
    assert.equal(grey.dataset.channels, 1);
    assert.equal(grey.dataset.resolution, 4, 'no resolution: the common size is kept');
    assert.deepEqual([...grey.dataset.image(0)], Array.from({ length: 16 }, (_, i) => 10 * i));

    const rgbDir = await freshDir();
    await writeFiles(rgbDir, { 'c.png': await png(2, 2, 3, (_x, _y, c) => [200, 100, 50][c]!) });
    const asGrey = await readImages(rgbDir, { channels: 1 });
    assert.equal(asGrey.dataset.channels, 1);
    assert.deepEqual([...asGrey.dataset.image(0)], [1, 2, 3, 4].map(() => rgbToGrey(200, 100, 50)));
    assert.equal(rgbToGrey(200, 100, 50), Math.round(200 * 0.299 + 100 * 0.587 + 50 * 0.114));
  });

  test('without a resolution, differing sizes are a clear error; with one they are resized', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'a.png': await png(8, 8, 1, () => 1), 'b.png': await png(16, 12, 1, () => 1) });
    await rejectsNaming(readImages(dir), /differ in size.*b\.png.*16×12.*pass a resolution/);
    const ok = await readImages(dir, { resolution: 4 });
    assert.equal(ok.dataset.resolution, 4);
    assert.equal(ok.dataset.image(1).length, 16);
  });

  test('upscaling and downscaling hit the requested size', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'small.png': await png(5, 5, 3, () => 50), 'big.png': await png(70, 90, 3, () => 60) });
    const { dataset } = await readImages(dir, { resolution: 32 });
    assert.equal(dataset.length, 2);
    assert.equal(dataset.image(0).length, 3 * 32 * 32);
    assert.equal(px(dataset.image(0), 32, 0, 16, 16), 60, 'big.png sorts first');
    assert.equal(px(dataset.image(1), 32, 2, 3, 30), 50);
  });

  test('isImageFile: extensions are case-insensitive; others ignored', () => {
    assert.ok(isImageFile('a/B.PNG') && isImageFile('x.JPeG') && isImageFile('y.jpg'));
    assert.ok(!isImageFile('dataset.json') && !isImageFile('README.txt') && !isImageFile('img.png.bak'));
  });
});

describe('readImages: labels', { timeout: 20_000 }, () => {
  test('dataset.json integer labels → one-hot, labelDim = max + 1, by relative path', async () => {
    const dir = await freshDir();
    await writeFiles(dir, {
      'a.png': await png(4, 4, 1, () => 0),
      'sub/b.png': await png(4, 4, 1, () => 1),
      'c.png': await png(4, 4, 1, () => 2),
      'dataset.json': JSON.stringify({ labels: [['sub/b.png', 4], ['a.png', 0], ['c.png', 2]] }),
    });
    const { dataset, files } = await readImages(dir);
    assert.deepEqual(files, ['a.png', 'c.png', 'sub/b.png']);
    assert.equal(dataset.labelDim, 5);
    assert.deepEqual([...dataset.label(0)!], [1, 0, 0, 0, 0]);
    assert.deepEqual([...dataset.label(1)!], [0, 0, 1, 0, 0]);
    assert.deepEqual([...dataset.label(2)!], [0, 0, 0, 0, 1]);
    assert.equal(dataset.image(2)[0], 1, 'labels follow their images, not file order in the json');
    const ignored = await readImages(dir, { labels: false });
    assert.equal(ignored.dataset.labelDim, 0);
    assert.equal(ignored.dataset.label(0), null);
  });

  test('{"labels": null} and float-vector labels', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'a.png': await png(2, 2, 1, () => 0), 'dataset.json': '{"labels": null}' });
    assert.equal((await readImages(dir)).dataset.labelDim, 0);
    await writeFiles(dir, { 'dataset.json': JSON.stringify({ labels: [['a.png', [0.5, -1, 2]]] }) });
    const v = await readImages(dir);
    assert.equal(v.dataset.labelDim, 3);
    assert.deepEqual([...v.dataset.label(0)!], [0.5, -1, 2]);
  });

  test('bad dataset.json: missing file, non-integer label, missing label, bad JSON', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'a.png': await png(2, 2, 1, () => 0), 'dataset.json': JSON.stringify({ labels: [['a.png', 0], ['gone.png', 1]] }) });
    await rejectsNaming(readImages(dir), /dataset\.json names 'gone\.png', which is not an image/);
    await writeFiles(dir, { 'dataset.json': JSON.stringify({ labels: [['a.png', 1.5]] }) });
    await rejectsNaming(readImages(dir), /dataset\.json: label for 'a\.png' must be a non-negative integer.*1\.5/);
    await writeFiles(dir, { 'dataset.json': JSON.stringify({ labels: [['a.png', 'cat']] }) });
    await rejectsNaming(readImages(dir), /label for 'a\.png'.*"cat"/);
    await writeFiles(dir, { 'b.png': await png(2, 2, 1, () => 0), 'dataset.json': JSON.stringify({ labels: [['a.png', 0]] }) });
    await rejectsNaming(readImages(dir), /dataset\.json has no label for image 'b\.png'/);
    await writeFiles(dir, { 'dataset.json': '{"labels": [' });
    await rejectsNaming(readImages(dir), /dataset\.json is not valid JSON/);
    assert.throws(() => parseDatasetJson('{"nolabels": 1}', 'x/dataset.json'), /expected \{"labels"/);
  });
});

describe('readImages: bad files', { timeout: 20_000 }, () => {
  test('missing path, empty folder, folder with no images', async () => {
    await rejectsNaming(readImages(path.join(tmp, 'does-not-exist')), /not found: .*does-not-exist/);
    const empty = await freshDir();
    await rejectsNaming(readImages(empty), /no images found in folder .*, expected \.png\/\.jpg\/\.jpeg files/);
    await writeFiles(empty, { 'README.txt': 'hi', '.hidden.png': 'x' });
    await rejectsNaming(readImages(empty), /no images found/);
  });

  test('each bad file fails naming it, or with skipBad is skipped and reported', async () => {
    const good = await png(8, 8, 3, () => 77);
    const pngFull = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    const cases: [string, Buffer | string, RegExp][] = [
      ['corrupt.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) % 256))]), /corrupt\.png: not a readable image/],
      ['truncated.png', pngFull.subarray(0, pngFull.length >> 1), /truncated\.png: cannot decode image, it may be truncated or corrupt/],
      ['empty.png', Buffer.alloc(0), /empty\.png: file is empty \(0 bytes\)/],
      ['text.jpg', 'this is just some text, not a JPEG at all\n', /text\.jpg: not a readable image/],
    ];
    for (const [name, data, pattern] of cases) {
      const dir = await freshDir();
      await writeFiles(dir, { 'a-good.png': good, [name]: data, 'z-good.png': good });
      const err = await rejectsNaming(readImages(dir, { resolution: 8 }), pattern);
      assert.equal(err.file, path.join(dir, name));
      const reported: string[] = [];
      const res = await readImages(dir, { resolution: 8, skipBad: true, onSkip: (s) => reported.push(s.file) });
      assert.equal(res.dataset.length, 2, `${name}: the two good images remain`);
      assert.deepEqual(res.files, ['a-good.png', 'z-good.png']);
      assert.equal(res.skipped.length, 1);
      assert.equal(res.skipped[0]!.file, path.join(dir, name));
      assert.match(res.skipped[0]!.reason, pattern);
      assert.deepEqual(reported, [path.join(dir, name)]);
    }
  });

  test('without a resolution, a skipped bad first file does not fix the size', async () => {
    const dir = await freshDir();
    const big = await png(40, 40, 3, (x) => x);
    await writeFiles(dir, { 'a-truncated.png': big.subarray(0, big.length >> 1), 'b.png': await png(6, 6, 3, () => 1), 'c.png': await png(6, 6, 3, () => 2) });
    const res = await readImages(dir, { skipBad: true });
    assert.equal(res.dataset.resolution, 6);
    assert.equal(res.dataset.length, 2);
    assert.equal(res.skipped.length, 1);
  });

  test('skipBad with only bad files is still an error; skipped labels are dropped', async () => {
    const dir = await freshDir();
    await writeFiles(dir, { 'x.png': 'nope', 'y.jpg': Buffer.alloc(0) });
    await rejectsNaming(readImages(dir, { skipBad: true }), /no readable images .*all 2 were skipped/);
    const dir2 = await freshDir();
    await writeFiles(dir2, {
      'a.png': await png(2, 2, 1, () => 3),
      'b.png': 'broken',
      'c.png': await png(2, 2, 1, () => 5),
      'dataset.json': JSON.stringify({ labels: [['a.png', 0], ['b.png', 3], ['c.png', 1]] }),
    });
    const res = await readImages(dir2, { skipBad: true });
    assert.equal(res.dataset.length, 2);
    assert.equal(res.dataset.resolution, 2);
    assert.equal(res.dataset.labelDim, 4, 'labelDim counts the skipped file’s class too');
    assert.deepEqual([...res.dataset.label(1)!], [0, 1, 0, 0]);
    assert.equal(res.dataset.image(1)[0], 5);
  });
});

describe('readImages: zips', { timeout: 20_000 }, () => {
  test('a zip of images with dataset.json reads like a folder', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'set.zip');
    await writeZip(file, {
      'b/two.png': await png(6, 6, 3, () => 9),
      'a.jpg': await jpeg(6, 6, [250, 250, 250]),
      '__MACOSX/._a.jpg': 'resource fork junk',
      'dataset.json': JSON.stringify({ labels: [['a.jpg', 1], ['b/two.png', 0]] }),
    });
    const { dataset, files } = await readImages(file);
    assert.deepEqual(files, ['a.jpg', 'b/two.png']);
    assert.equal(dataset.name, 'set');
    assert.equal(dataset.resolution, 6);
    assert.deepEqual([...dataset.label(0)!], [0, 1]);
    assert.equal(dataset.image(1)[0], 9);
  });

  test('a file that is not a zip, and a damaged zip, give clear errors', async () => {
    const dir = await freshDir();
    const notZip = path.join(dir, 'fake.zip');
    await fsp.writeFile(notZip, 'PK but not really a zip file');
    await rejectsNaming(readImages(notZip), /fake\.zip is not a readable zip file/);
    const real = path.join(dir, 'real.zip');
    await writeZip(real, { 'a.png': await png(4, 4, 1, () => 1), 'b.png': await png(4, 4, 1, () => 2) });
    const bytes = await fsp.readFile(real);
    const cut = path.join(dir, 'cut.zip');
    await fsp.writeFile(cut, bytes.subarray(0, bytes.length - 30));
    await rejectsNaming(readImages(cut), /cut\.zip/);
    // Corrupt an entry's data in place (stored PNG bytes): the central directory is intact.
    const corrupt = Buffer.from(bytes);
    for (let i = 60; i < 120; i++) corrupt[i] = 0;
    const bad = path.join(dir, 'bad-entry.zip');
    await fsp.writeFile(bad, corrupt);
    await rejectsNaming(readImages(bad), /bad-entry\.zip:a\.png/);
  });
});
