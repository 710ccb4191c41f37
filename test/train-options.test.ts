// Option validation happens before any work: bad values give one clear error
// naming the option and the value, and no run directory is created (the
// output folder stays empty or absent).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train, type TrainRequest } from '../src/train/train.js';
import { resolveTrainOptions, ARCH_DEFAULTS } from '../src/train/options.js';
import { cleanup, makeTempDir, tinyTrainFlags, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let data: string;
let empty: string;
let notImages: string;

before(async () => {
  tmp = makeTempDir('train-options');
  data = await writeShapeImages(join(tmp, 'data'));
  empty = join(tmp, 'empty');
  mkdirSync(empty);
  notImages = join(tmp, 'text-only');
  mkdirSync(notImages);
  writeFileSync(join(notImages, 'readme.txt'), 'no images here\n');
});
after(() => cleanup(tmp));

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs train() with the tiny config plus `change` into a fresh outdir; asserts it fails with `expected` and leaves no run. */
async function rejectsWithoutRun(name: string, change: Record<string, unknown>, expected: RegExp[]): Promise<void> {
  const outdir = join(tmp, `out-${name}`);
  const request = { ...tinyTrainRequest(data, outdir), ...change } as TrainRequest;
  await assert.rejects(train(request), (e: Error) => {
    for (const re of expected) assert.match(e.message, re, `${name}: the message names what is wrong`);
    return true;
  }, name);
  const runs = existsSync(outdir) ? readdirSync(outdir) : [];
  assert.deepEqual(runs, [], `${name}: no run directory was created`);
}

test('real_p outside [0, 1]', async () => {
  await rejectsWithoutRun('real-p', { realP: 1.5 }, [/--real-p/, /1\.5/]);
  await rejectsWithoutRun('real-p-neg', { realP: -0.1 }, [/--real-p/, /-0\.1/]);
});

test('batch not divisible by batch-gpu', async () => {
  await rejectsWithoutRun('batch-gpu', { batch: 4, batchGpu: 3 }, [/--batch-gpu/, /\b3\b/, /--batch 4/]);
  await rejectsWithoutRun('batch-gpu-big', { batch: 4, batchGpu: 8 }, [/--batch-gpu/, /\b8\b/]);
});

test('unknown arch', async () => {
  await rejectsWithoutRun('arch', { arch: 'resnet50' }, [/--arch/, /resnet50/, /ddpmpp/]);
});

test('missing --data and --duration', async () => {
  await rejectsWithoutRun('no-data', { data: undefined }, [/--data/, /required/]);
  await rejectsWithoutRun('no-duration', { duration: undefined }, [/--duration/, /required/]);
});

test('other bad numbers name the option and the value', async () => {
  await rejectsWithoutRun('lr', { lr: -1 }, [/--lr/, /-1/]);
  await rejectsWithoutRun('dropout', { dropout: 2 }, [/--dropout/, /\b2\b/]);
  await rejectsWithoutRun('seed', { seed: 1.5 }, [/--seed/, /1\.5/]);
  await rejectsWithoutRun('duration', { duration: 0 }, [/--duration/, /\b0\b/]);
  await rejectsWithoutRun('cres', { cres: [1, 0] }, [/--cres/, /\[1,0\]/]);
  await rejectsWithoutRun('unknown-key', { bogus: 1 }, [/bogus/]);
});

test('a resolution the patch sizes do not fit', async () => {
  // 18: R/4 = 4.5 is not an integer; 20: R/4 = 5 is not a multiple of the network's 2.
  await rejectsWithoutRun('res-18', { resolution: 18 }, [/resolution 18/, /divisible by 4/]);
  await rejectsWithoutRun('res-20', { resolution: 20 }, [/resolution 20/, /patch size 5/, /multiple of 2/]);
  // The same resolution is fine for plain EDM (real_p = 1 never draws the small patches)... checked without training:
  assert.doesNotThrow(() => resolveTrainOptions({ data, duration: 1, resolution: 20, realP: 1 }));
});

test('--cond on a folder without labels', async () => {
  await rejectsWithoutRun('cond', { cond: true }, [/--cond/, /labels/, /dataset\.json/]);
});

test('an empty data folder, a folder without images, a missing folder', async () => {
  await rejectsWithoutRun('empty', { data: empty }, [new RegExp(`no images found in .*${escape(empty)}`)]);
  await rejectsWithoutRun('text-only', { data: notImages }, [new RegExp(`no images found in .*${escape(notImages)}`)]);
  const missing = join(tmp, 'missing-folder');
  await rejectsWithoutRun('missing', { data: missing }, [new RegExp(escape(missing))]);
});

test('defaults: small arch fills its CPU-sized schedule; batch-gpu defaults to batch', () => {
  const o = resolveTrainOptions({ data, duration: 0.01, arch: 'small' });
  assert.equal(o.batch, ARCH_DEFAULTS.small.batch);
  assert.equal(o.batchGpu, o.batch);
  assert.equal(o.lr, ARCH_DEFAULTS.small.lr);
  assert.equal(o.realP, 0.5);
  assert.equal(o.emaRampup, 0.05);
  const d = resolveTrainOptions({ data, duration: 0.01 });
  assert.equal(d.arch, 'ddpmpp');
  assert.equal(d.lrRampup, 10000, 'the official 10 Mimg ramp');
});

test('the CLI reports a bad value on stderr with exit code 1 and creates nothing', () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const outdir = join(tmp, 'out-cli');
  const res = spawnSync(process.execPath, [main, 'train', ...tinyTrainFlags(data, outdir, 0.001), '--real-p', '1.5'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.status, 1, res.stderr);
  assert.match(res.stderr, /^error: invalid training options:\n--real-p: .*1\.5/m);
  assert.ok(!existsSync(outdir) || readdirSync(outdir).length === 0);
  const arch = spawnSync(process.execPath, [main, 'train', ...tinyTrainFlags(data, outdir, 0.001), '--arch', 'resnet50'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(arch.status, 0);
  assert.match(arch.stderr, /--arch.*resnet50/);
  assert.ok(!existsSync(outdir) || readdirSync(outdir).length === 0);
});
