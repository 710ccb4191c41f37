// loadDataset, the emoji loader (on generated PNGs, no download), and the
// `dataset` command end to end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { CommanderError } from 'commander';
import { datasetCommand, runDatasetCommand, validateDatasetOptions } from '../src/cli/commands/dataset.js';
import { loadDataset, isBuiltinName } from '../src/data/builtin.js';
import { LICENSE_NOTE, ensureEmoji, isSkinToneVariant, loadEmoji } from '../src/data/emoji.js';
import { readImages } from '../src/data/images.js';
import { writeEdmZip } from '../src/data/edm-zip.js';

async function solidPng(width: number, height: number, rgba: [number, number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: { r: rgba[0], g: rgba[1], b: rgba[2], alpha: rgba[3] / 255 } } })
    .png()
    .toBuffer();
}

/** An emoji-like PNG: transparent background with an opaque 16×16 square in the middle. */
async function emojiPng(rgb: [number, number, number]): Promise<Buffer> {
  const raw = Buffer.alloc(64 * 64 * 4);
  for (let y = 24; y < 40; y++) {
    for (let x = 24; x < 40; x++) raw.set([rgb[0], rgb[1], rgb[2], 255], (y * 64 + x) * 4);
  }
  return sharp(raw, { raw: { width: 64, height: 64, channels: 4 } }).png().toBuffer();
}

let tmp: string;
let imgDir: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pd-data-cli-'));
  imgDir = path.join(tmp, 'images');
  await fsp.mkdir(path.join(imgDir, 'sub'), { recursive: true });
  // 6 RGB-ish images, 3 classes; one is 48×32 (cropped), one grey.
  const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [200, 200, 0], [0, 200, 200]];
  const labels: [string, number][] = [];
  for (let i = 0; i < colours.length; i++) {
    const name = i < 3 ? `im${i}.png` : `sub/im${i}.png`;
    const c = colours[i]!;
    await fsp.writeFile(path.join(imgDir, name), await solidPng(i === 4 ? 48 : 32, 32, [c[0], c[1], c[2], 255]));
    labels.push([name, i % 3]);
  }
  await fsp.writeFile(path.join(imgDir, 'dataset.json'), JSON.stringify({ labels }));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('loadDataset', { timeout: 20_000 }, () => {
  test('paths: labels on/off, channels, resolution, maxImages', async () => {
    const ds = await loadDataset(imgDir, { resolution: 16 });
    assert.equal(ds.length, 6);
    assert.equal(ds.resolution, 16);
    assert.equal(ds.channels, 3);
    assert.equal(ds.labelDim, 3);
    const noLabels = await loadDataset(imgDir, { resolution: 16, labels: false });
    assert.equal(noLabels.labelDim, 0);
    assert.equal(noLabels.label(0), null);
    const grey = await loadDataset(imgDir, { resolution: 8, channels: 1 });
    assert.equal(grey.channels, 1);
    assert.equal(grey.image(0).length, 64);
    const sub = await loadDataset(imgDir, { resolution: 8, maxImages: 4, seed: 1 });
    const sub2 = await loadDataset(imgDir, { resolution: 8, maxImages: 4, seed: 1 });
    assert.equal(sub.length, 4);
    for (let i = 0; i < 4; i++) assert.deepEqual(sub.image(i), sub2.image(i));
    await assert.rejects(loadDataset(imgDir, { maxImages: 0 }), /maxImages must be a positive integer/);
    assert.ok(isBuiltinName('fashion-mnist') && isBuiltinName('emoji') && !isBuiltinName('constructor'));
  });
});

describe('emoji', { timeout: 20_000 }, () => {
  test('skin-tone variants are recognised from the file name', () => {
    assert.equal(isSkinToneVariant('1f600.png'), false);
    assert.equal(isSkinToneVariant('1f44b-1f3fb.png'), true);
    assert.equal(isSkinToneVariant('img/google/64/1F44B-1F3FF.png'), true);
    assert.equal(isSkinToneVariant('1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3fc.png'), true);
    assert.equal(isSkinToneVariant('1f3fb.png'), false, 'the swatch emoji itself is a base image');
    assert.equal(isSkinToneVariant('1f468-200d-1f469-200d-1f467.png'), false);
    assert.equal(isSkinToneVariant('0023-fe0f-20e3.png'), false);
  });

  test('loads a folder of 64×64 RGBA emoji on white, with and without skin tones, keeping the licence', async () => {
    const dir = path.join(tmp, 'emoji');
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, '1f600.png'), await emojiPng([255, 200, 0]));
    await fsp.writeFile(path.join(dir, '1f44b.png'), await emojiPng([250, 180, 80]));
    await fsp.writeFile(path.join(dir, '1f44b-1f3fb.png'), await emojiPng([250, 220, 190]));
    await fsp.writeFile(path.join(dir, '1f44b-1f3ff.png'), await emojiPng([90, 60, 40]));
    const all = await loadEmoji({ imageDir: dir });
    assert.equal(all.length, 4);
    assert.equal(all.name, 'emoji');
    assert.equal(all.resolution, 64);
    assert.equal(all.channels, 3);
    assert.equal(all.labelDim, 0);
    assert.equal(all.notice, LICENSE_NOTE);
    assert.match(LICENSE_NOTE, /Apache License, Version 2\.0/);
    assert.match(LICENSE_NOTE, /Noto/);
    const base = await loadEmoji({ imageDir: dir, skinTones: false });
    assert.equal(base.length, 2);
    const im = base.image(1); // 1f600 sorts after 1f44b
    const at = (c: number, y: number, x: number) => im[(c * 64 + y) * 64 + x];
    assert.deepEqual([at(0, 0, 0), at(1, 0, 0), at(2, 0, 0)], [255, 255, 255], 'transparent corner is white');
    assert.deepEqual([at(0, 32, 32), at(1, 32, 32), at(2, 32, 32)], [255, 200, 0], 'opaque centre keeps its colour');
    const small = await loadEmoji({ imageDir: dir, resolution: 32 });
    assert.equal(small.resolution, 32);

    const dest = path.join(tmp, 'emoji.zip');
    const res = await writeEdmZip(dest, base);
    assert.equal(res.noticePath, `${dest}.NOTICE`);
    assert.equal((await fsp.readFile(res.noticePath!, 'utf8')).trim(), LICENSE_NOTE);
    const back = await readImages(dest);
    assert.deepEqual(back.dataset.image(1), im);
  });

  test('no download without permission: a clear error with the npm command', () => {
    assert.throws(
      () => ensureEmoji({ cacheDir: path.join(tmp, 'no-cache'), install: false }),
      /not installed in .*no-cache; fetch it with: npx patch-diffusion setup --data emoji \(or npm install --prefix .* emoji-datasource-google@16\.0\.0/,
    );
    // The library never fetches by itself: without install: true it says what to run, and nothing is written.
    assert.throws(() => ensureEmoji({ cacheDir: path.join(tmp, 'no-cache-default') }), /fetch it with: npx patch-diffusion setup --data emoji/);
    assert.equal(existsSync(path.join(tmp, 'no-cache-default')), false);
  });
});

describe('dataset command', { timeout: 20_000 }, () => {
  test('validation fails fast with clear messages', async () => {
    const dest = path.join(tmp, 'v.zip');
    await assert.rejects(validateDatasetOptions({ source: path.join(tmp, 'nope'), dest }), /--source .*nope: no such file or folder, and not a built-in dataset \(fashion-mnist, fashion-mnist-5k, fashion-mnist-2k, fashion-mnist-500, emoji\)/);
    await assert.rejects(validateDatasetOptions({ source: imgDir, dest: path.join(tmp, 'out.tar') }), /must end in \.zip/);
    await assert.rejects(validateDatasetOptions({ source: imgDir, dest: path.join(tmp, 'missing', 'x.zip') }), /folder .*missing does not exist/);
    await assert.rejects(validateDatasetOptions({ source: imgDir, dest, channels: 2 as unknown as 1 }), /--channels must be 1 or 3/);
    await assert.rejects(validateDatasetOptions({ source: imgDir, dest, resolution: 0 }), /--resolution must be an integer/);
    await assert.rejects(validateDatasetOptions({ source: imgDir, dest, maxImages: -3 }), /--max-images must be a positive integer/);
    const zipSrc = path.join(tmp, 'same.zip');
    await fsp.writeFile(zipSrc, 'x');
    await assert.rejects(validateDatasetOptions({ source: zipSrc, dest: zipSrc }), /--dest must differ from --source/);
    assert.deepEqual(await validateDatasetOptions({ source: 'fashion-mnist', dest }), []);
    assert.match((await validateDatasetOptions({ source: imgDir, dest, resolution: 48 }))[0]!, /not a power of two/);
  });

  test('commander parsing: bad numbers and channels are rejected before any work', async () => {
    const errors: string[] = [];
    const parse = (args: string[]) =>
      datasetCommand()
        .exitOverride()
        .configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => {} })
        .parseAsync(args, { from: 'user' });
    // fashion-mnist would take seconds to load; failing in milliseconds proves no work was done.
    const t0 = Date.now();
    await assert.rejects(parse(['--source', 'fashion-mnist', '--dest', path.join(tmp, 'x.zip'), '--resolution', 'abc']), CommanderError);
    await assert.rejects(parse(['--source', 'fashion-mnist', '--dest', path.join(tmp, 'x.zip'), '--channels', '2']), CommanderError);
    await assert.rejects(parse(['--source', 'fashion-mnist', '--dest', path.join(tmp, 'x.zip'), '--max-images', '1.5']), CommanderError);
    await assert.rejects(parse(['--dest', path.join(tmp, 'x.zip')]), CommanderError);
    assert.ok(Date.now() - t0 < 2000);
    assert.match(errors.join(''), /--resolution must be a whole number, got 'abc'/);
    assert.match(errors.join(''), /--channels must be 1 or 3, got '2'/);
    assert.match(errors.join(''), /--max-images must be a whole number/);
    assert.match(errors.join(''), /required option '--source/);
    await assert.rejects(parse(['--source', path.join(tmp, 'nope'), '--dest', path.join(tmp, 'x.zip')]), /no such file or folder/);
  });

  test('folder → EDM zip with summary; round trip equals loadDataset', async () => {
    const dest = path.join(tmp, 'out.zip');
    const lines: string[] = [];
    const { dataset, zip } = await runDatasetCommand({ source: imgDir, dest, resolution: 16, seed: 0 }, (l) => lines.push(l));
    assert.equal(zip.count, 6);
    const text = lines.join('\n');
    assert.match(text, /wrote .*out\.zip/);
    assert.match(text, /images: +6/);
    assert.match(text, /resolution: +16×16/);
    assert.match(text, /channels: +3 \(RGB\)/);
    assert.match(text, /labels: +3-wide/);
    assert.match(text, /size: +[\d.]+ KiB/);
    const back = await readImages(dest);
    assert.equal(back.dataset.labelDim, 3);
    for (let i = 0; i < dataset.length; i++) {
      assert.deepEqual(back.dataset.image(i), dataset.image(i));
      assert.deepEqual(back.dataset.label(i), dataset.label(i));
    }
  });

  test('via commander: --max-images, --channels 1, --no-labels, --skip-bad', async () => {
    const src = path.join(tmp, 'with-bad');
    await fsp.cp(imgDir, src, { recursive: true });
    await fsp.writeFile(path.join(src, 'zz-broken.png'), 'not a png');
    const dest = path.join(tmp, 'cmd.zip');
    const origLog = console.log;
    const logged: string[] = [];
    console.log = (...a: unknown[]) => void logged.push(a.join(' '));
    const origErr = process.stderr.write.bind(process.stderr);
    const warned: string[] = [];
    process.stderr.write = ((s: string) => (warned.push(String(s)), true)) as typeof process.stderr.write;
    try {
      // Without --skip-bad the broken file stops the run and names itself.
      await assert.rejects(
        datasetCommand().exitOverride().parseAsync(['--source', src, '--dest', dest, '--resolution', '8', '--no-labels'], { from: 'user' }),
        /zz-broken\.png: not a readable image/,
      );
      await assert.rejects(fsp.stat(dest), /ENOENT/, 'nothing written on failure');
      // zz-broken.png has no entry in dataset.json, so labels are dropped here too.
      await datasetCommand()
        .exitOverride()
        .parseAsync(['--source', src, '--dest', dest, '--resolution', '8', '--channels', '1', '--max-images', '4', '--seed', '7', '--no-labels', '--skip-bad'], { from: 'user' });
    } finally {
      console.log = origLog;
      process.stderr.write = origErr;
    }
    assert.match(warned.join(''), /warning: skipped .*zz-broken\.png/);
    assert.match(logged.join('\n'), /images: +4/);
    assert.match(logged.join('\n'), /labels: +none/);
    assert.match(logged.join('\n'), /skipped: +1 unreadable/);
    const back = await readImages(dest);
    assert.equal(back.dataset.length, 4);
    assert.equal(back.dataset.channels, 1);
    assert.equal(back.dataset.resolution, 8);
    assert.equal(back.dataset.labelDim, 0);
  });
});
