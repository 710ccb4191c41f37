// EDM-style zip output: names, dataset.json, bit-exact round trip, atomic write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import yauzl from 'yauzl';
import { ArrayDataset, oneHot, type ImageDataset } from '../src/data/dataset.js';
import { datasetJson, edmImageName, writeEdmZip } from '../src/data/edm-zip.js';
import { readImages } from '../src/data/images.js';
import { DatasetError } from '../src/data/errors.js';

/** A dataset of pseudo-random pixels (every byte value occurs), so any resampling or channel mix-up shows. */
function randomDataset(count: number, channels: 1 | 3, res: number, classes: number[] | null): ImageDataset {
  const pixels = new Uint8Array(count * channels * res * res);
  let s = 12345;
  for (let i = 0; i < pixels.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    pixels[i] = s >>> 24;
  }
  const labelDim = classes ? Math.max(...classes) + 1 : 0;
  return new ArrayDataset({ name: 'rand', resolution: res, channels, pixels, labels: classes ? oneHot(classes, labelDim) : null, labelDim });
}

async function zipEntries(file: string): Promise<Map<string, { size: number; method: number; data: Buffer }>> {
  const zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  const out = new Map<string, { size: number; method: number; data: Buffer }>();
  for await (const e of zip.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const c of await zip.openReadStreamPromise(e)) chunks.push(c as Buffer);
    out.set(e.fileName, { size: e.uncompressedSize, method: e.compressionMethod, data: Buffer.concat(chunks) });
  }
  zip.close();
  return out;
}

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pd-data-zip-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('EDM zip', { timeout: 20_000 }, () => {
  test('image names follow EDM: 5-digit folder, 8-digit index', () => {
    assert.equal(edmImageName(0), '00000/img00000000.png');
    assert.equal(edmImageName(12345), '00012/img00012345.png');
    assert.equal(edmImageName(99_999_999), '99999/img99999999.png');
    assert.throws(() => edmImageName(-1), RangeError);
    assert.throws(() => edmImageName(1e8), RangeError);
  });

  test('RGB with labels: stored entries, dataset.json, bit-exact round trip', async () => {
    const classes = [2, 0, 1, 2, 2, 0, 1];
    const ds = randomDataset(classes.length, 3, 16, classes);
    const dest = path.join(tmp, 'rgb.zip');
    const res = await writeEdmZip(dest, ds);
    assert.equal(res.count, 7);
    assert.equal(res.bytes, (await fsp.stat(dest)).size);
    assert.equal(res.noticePath, undefined);

    const entries = await zipEntries(dest);
    assert.deepEqual([...entries.keys()].sort(), [...classes.map((_, i) => edmImageName(i)), 'dataset.json'].sort());
    for (const [name, e] of entries) assert.equal(e.method, 0, `${name} must be stored, not deflated`);
    const json = JSON.parse(entries.get('dataset.json')!.data.toString('utf8')) as { labels: [string, number][] };
    assert.deepEqual(json.labels, classes.map((c, i) => [edmImageName(i), c]));
    // Uncompressed PNG: raw pixel data takes at least res*res*3 bytes.
    assert.ok(entries.get(edmImageName(0))!.size > 16 * 16 * 3);

    const back = await readImages(dest);
    assert.equal(back.dataset.length, ds.length);
    assert.equal(back.dataset.resolution, 16);
    assert.equal(back.dataset.channels, 3);
    assert.equal(back.dataset.labelDim, 3);
    for (let i = 0; i < ds.length; i++) {
      assert.deepEqual(back.dataset.image(i), ds.image(i), `image ${i} must round-trip bit-exact`);
      assert.deepEqual(back.dataset.label(i), ds.label(i));
    }
    // Asking for the stored resolution explicitly must not resample either.
    const again = await readImages(dest, { resolution: 16 });
    assert.deepEqual(again.dataset.image(6), ds.image(6));
  });

  test('grey, unlabelled: 1-channel PNGs, {"labels": null}, round trip', async () => {
    const ds = randomDataset(3, 1, 8, null);
    const dest = path.join(tmp, 'grey.zip');
    await writeEdmZip(dest, ds);
    const entries = await zipEntries(dest);
    assert.deepEqual(JSON.parse(entries.get('dataset.json')!.data.toString('utf8')), { labels: null });
    // PNG colour type byte (IHDR offset 25): 0 = greyscale.
    assert.equal(entries.get(edmImageName(0))!.data[25], 0);
    const back = await readImages(dest);
    assert.equal(back.dataset.channels, 1);
    assert.equal(back.dataset.labelDim, 0);
    for (let i = 0; i < 3; i++) assert.deepEqual(back.dataset.image(i), ds.image(i));
  });

  test('non-one-hot label vectors are written as vectors', () => {
    const ds = new ArrayDataset({ name: 'v', resolution: 1, channels: 1, pixels: new Uint8Array(2), labels: new Float32Array([0.5, 1, 0, 0]), labelDim: 2 });
    assert.deepEqual(JSON.parse(datasetJson(ds)), { labels: [[edmImageName(0), [0.5, 1]], [edmImageName(1), [0, 0]]] });
  });

  test('the same dataset gives the same bytes; NOTICE travels inside and beside the zip', async () => {
    const ds = new ArrayDataset({ ...{ name: 'n', resolution: 4, channels: 3 as const }, pixels: randomDataset(2, 3, 4, null).image(0).slice(), notice: 'Images © Someone, Apache-2.0' });
    const a = path.join(tmp, 'a.zip');
    const b = path.join(tmp, 'b.zip');
    const ra = await writeEdmZip(a, ds);
    await writeEdmZip(b, ds);
    assert.deepEqual(await fsp.readFile(a), await fsp.readFile(b));
    assert.equal(ra.noticePath, `${a}.NOTICE`);
    assert.match(await fsp.readFile(`${a}.NOTICE`, 'utf8'), /Apache-2\.0/);
    assert.equal((await zipEntries(a)).get('NOTICE')!.data.toString('utf8'), 'Images © Someone, Apache-2.0');
    // NOTICE inside the zip is not mistaken for an image.
    assert.equal((await readImages(a)).dataset.length, 1);
    // Rewriting the path with unattributed data removes the stale NOTICE.
    await writeEdmZip(a, randomDataset(1, 1, 2, null));
    await assert.rejects(fsp.stat(`${a}.NOTICE`), /ENOENT/);
  });

  test('atomic: overwrites only when complete, leaves no temp files; missing folder is an error', async () => {
    const dir = path.join(tmp, 'atomic');
    await fsp.mkdir(dir);
    const dest = path.join(dir, 'out.zip');
    await fsp.writeFile(dest, 'old content');
    // A dataset whose image() throws halfway: the old file must survive untouched.
    const good = randomDataset(40, 1, 4, null);
    const failing: ImageDataset = {
      ...good,
      name: 'failing',
      length: good.length,
      resolution: good.resolution,
      channels: good.channels,
      labelDim: 0,
      image: (i: number) => {
        if (i === 30) throw new Error('simulated failure');
        return good.image(i);
      },
      label: () => null,
    };
    await assert.rejects(writeEdmZip(dest, failing), /failed to write .*out\.zip: simulated failure/);
    assert.equal(await fsp.readFile(dest, 'utf8'), 'old content');
    assert.deepEqual(await fsp.readdir(dir), ['out.zip']);
    await writeEdmZip(dest, good);
    assert.deepEqual(await fsp.readdir(dir), ['out.zip']);
    assert.equal((await readImages(dest)).dataset.length, 40);
    await assert.rejects(writeEdmZip(path.join(tmp, 'no', 'such', 'dir.zip'), good), (err: unknown) => err instanceof DatasetError && /does not exist/.test(err.message));
  });

  test('a malformed zip gives a clear error naming it', async () => {
    const dest = path.join(tmp, 'good.zip');
    await writeEdmZip(dest, randomDataset(3, 3, 4, [0, 1, 0]));
    const bytes = await fsp.readFile(dest);
    const truncated = path.join(tmp, 'truncated.zip');
    await fsp.writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(readImages(truncated), (err: unknown) => err instanceof DatasetError && /truncated\.zip is not a readable zip file/.test(err.message));
    const garbage = path.join(tmp, 'garbage.zip');
    await fsp.writeFile(garbage, Buffer.alloc(1000, 0x41));
    await assert.rejects(readImages(garbage), (err: unknown) => err instanceof DatasetError && /garbage\.zip is not a readable zip file/.test(err.message));
  });
});
