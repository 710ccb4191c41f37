// `generate` from the snapshot of a tiny run: one PNG per seed plus a grid,
// an image that depends only on its seed (not on the batch it was drawn in),
// different seeds giving different images, clear errors for a corrupt or
// missing snapshot, and the seed-list syntax.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { train } from '../src/train/train.js';
import { generate, parseSeedList } from '../src/generate/generate.js';
import { resolveSnapshotPath } from '../src/model/load-network.js';
import { FASHION_MNIST_DIR } from '../src/data/fashion-mnist.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let runDir: string;
let snapshot: string;

before(async () => {
  tmp = makeTempDir('generate');
  const data = await writeShapeImages(join(tmp, 'data'));
  const r = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(3) }));
  assert.ok(r?.lastSnapshot);
  runDir = r.runDir;
  snapshot = r.lastSnapshot;
});
after(() => cleanup(tmp));

const png = (dir: string, seed: number) => join(dir, `${String(seed).padStart(6, '0')}.png`);
const pixels = async (file: string) => sharp(file).raw().toBuffer({ resolveWithObject: true });

test('4 seeds in batches of 2: 4 PNGs (16×16, the training channels) and grid.png', async () => {
  const outdir = join(tmp, 'out-a');
  const summary = await generate({ network: runDir, outdir, seeds: [0, 1, 2, 3], batch: 2, steps: 3, device: 'cpu', threads: 1, quiet: true });
  assert.deepEqual(summary.files, [0, 1, 2, 3].map((s) => png(outdir, s)));
  for (const f of summary.files) {
    const { info } = await pixels(f);
    assert.deepEqual([info.width, info.height, info.channels], [16, 16, 3], f);
  }
  assert.equal(summary.gridPath, join(outdir, 'grid.png'));
  const grid = await sharp(summary.gridPath).metadata();
  assert.ok(grid.width! >= 2 * 16 && grid.height! >= 2 * 16, `grid ${grid.width}×${grid.height} holds a 2×2 layout`);
  assert.ok(summary.imagesPerSec > 0);
});

test('an image depends only on its seed: seeds 2,3 alone are byte-identical to 2,3 drawn with 0,1', async () => {
  const all = join(tmp, 'out-a');
  const again = join(tmp, 'out-b');
  // A run directory and the snapshot file inside it name the same network.
  assert.equal(resolveSnapshotPath(runDir), snapshot);
  await generate({ network: snapshot, outdir: again, seeds: [2, 3], batch: 2, steps: 3, device: 'cpu', threads: 1, quiet: true, grid: false });
  assert.ok(!existsSync(join(again, 'grid.png')), 'grid: false writes no grid');
  for (const s of [2, 3]) assert.ok(readFileSync(png(again, s)).equals(readFileSync(png(all, s))), `seed ${s}: identical PNG bytes`);
  // Batch size 1 and a different order do not matter either.
  const single = join(tmp, 'out-c');
  await generate({ network: runDir, outdir: single, seeds: [3, 1], batch: 1, steps: 3, device: 'cpu', threads: 1, quiet: true });
  for (const s of [1, 3]) assert.ok(readFileSync(png(single, s)).equals(readFileSync(png(all, s))), `seed ${s} alone: identical`);
});

test('different seeds give different images; more steps give a different image for the same seed', async () => {
  const all = join(tmp, 'out-a');
  const decoded = await Promise.all([0, 1, 2, 3].map((s) => pixels(png(all, s))));
  for (let i = 0; i < 4; i++)
    for (let j = i + 1; j < 4; j++) assert.ok(!decoded[i]!.data.equals(decoded[j]!.data), `seeds ${i} and ${j} differ`);
  const other = join(tmp, 'out-d');
  await generate({ network: runDir, outdir: other, seeds: [7, 0], batch: 2, steps: 4, device: 'cpu', threads: 1, quiet: true, grid: false });
  const seven = await pixels(png(other, 7));
  for (const d of decoded) assert.ok(!seven.data.equals(d.data), 'seed 7 differs from seeds 0..3');
  assert.ok(!(await pixels(png(other, 0))).data.equals(decoded[0]!.data), 'steps 4 vs 3 differ for seed 0');
});

test('a truncated snapshot gives a clear error naming the file; a missing one too', async () => {
  const dir = join(tmp, 'corrupt');
  mkdirSync(dir);
  const bad = join(dir, 'network-snapshot-000000.safetensors');
  copyFileSync(snapshot, bad);
  truncateSync(bad, Math.floor(statSync(bad).size / 2));
  const escaped = bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await assert.rejects(generate({ network: bad, outdir: join(tmp, 'out-bad'), seeds: [0], steps: 2, device: 'cpu', quiet: true }),
    new RegExp(`${escaped}: not a valid safetensors file: .*truncated`));
  // Through the run directory as well (the newest snapshot is the corrupt one).
  await assert.rejects(generate({ network: dir, outdir: join(tmp, 'out-bad'), seeds: [0], steps: 2, device: 'cpu', quiet: true }), new RegExp(escaped));
  // Garbage that is not safetensors at all.
  writeFileSync(bad, 'this is not a network');
  await assert.rejects(generate({ network: bad, outdir: join(tmp, 'out-bad'), seeds: [0], steps: 2, device: 'cpu', quiet: true }),
    new RegExp(`${escaped}: not a valid safetensors file`));
  // A valid safetensors file that is not a snapshot (a training state).
  const state = join(runDir, 'training-state-000000.safetensors');
  await assert.rejects(generate({ network: state, outdir: join(tmp, 'out-bad'), seeds: [0], steps: 2, device: 'cpu', quiet: true }),
    /training-state-000000\.safetensors: not a patch-diffusion network snapshot/);
  const missing = join(tmp, 'nope.safetensors');
  await assert.rejects(generate({ network: missing, outdir: join(tmp, 'out-bad'), seeds: [0], device: 'cpu', quiet: true }), /--network: .*nope\.safetensors does not exist/);
  await assert.rejects(generate({ network: join(tmp, 'data'), outdir: join(tmp, 'out-bad'), seeds: [0], device: 'cpu', quiet: true }), /--network: no network-snapshot-\*\.safetensors in/);
  await assert.rejects(generate({ network: runDir, outdir: join(tmp, 'out-bad'), seeds: [], device: 'cpu', quiet: true }), /--seeds/);
  await assert.rejects(generate({ network: runDir, outdir: join(tmp, 'out-bad'), seeds: [0], steps: 0, device: 'cpu', quiet: true }), /--steps/);
});

test('parseSeedList: ranges and lists, bad specs fail', () => {
  assert.deepEqual(parseSeedList('0-3,7'), [0, 1, 2, 3, 7]);
  assert.deepEqual(parseSeedList('5'), [5]);
  assert.deepEqual(parseSeedList('1, 2 ,10-12'), [1, 2, 10, 11, 12]);
  assert.deepEqual(parseSeedList('0-63').length, 64);
  assert.throws(() => parseSeedList('a'), /--seeds: 'a' is not a seed/);
  assert.throws(() => parseSeedList('3-1'), /--seeds: range '3-1' runs backwards/);
  assert.throws(() => parseSeedList('-1'), /--seeds: '-1'/);
  assert.throws(() => parseSeedList('1.5'), /--seeds: '1\.5'/);
  assert.throws(() => parseSeedList('0-99999999'), /names more than 10,000,000 seeds/);
});

test('the generate CLI writes the files and reports a corrupt snapshot on stderr with exit code 1', () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const outdir = join(tmp, 'out-cli');
  const ok = spawnSync(process.execPath, [main, 'generate', '--network', runDir, '--outdir', outdir, '--seeds', '2-3', '--batch', '2', '--steps', '3', '--device', 'cpu', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(ok.status, 0, ok.stderr);
  for (const s of [2, 3]) assert.ok(readFileSync(png(outdir, s)).equals(readFileSync(png(join(tmp, 'out-a'), s))), `CLI seed ${s} identical`);
  const bad = spawnSync(process.execPath, [main, 'generate', '--network', join(tmp, 'corrupt', 'network-snapshot-000000.safetensors'), '--outdir', outdir, '--seeds', '0'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^error: .*corrupt\/network-snapshot-000000\.safetensors: not a valid safetensors file/m);
  const seeds = spawnSync(process.execPath, [main, 'generate', '--network', runDir, '--outdir', outdir, '--seeds', '5-2'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(seeds.status, 1);
  assert.match(seeds.stderr, /--seeds: range '5-2' runs backwards/);
});

test('metrics on a folder generate wrote: the overview grid is left out with a note, the samples measured', () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const outdir = join(tmp, 'out-metrics');
  const gen = spawnSync(process.execPath, [main, 'generate', '--network', runDir, '--outdir', outdir, '--seeds', '0-3', '--batch', '4', '--steps', '3', '--device', 'cpu', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(gen.status, 0, gen.stderr);
  assert.ok(existsSync(join(outdir, 'grid.png')));
  const m = spawnSync(process.execPath, [main, 'metrics', '--images', outdir, '--ref', join(tmp, 'data'), '--metrics', 'swd', '--device', 'cpu', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(m.status, 0, m.stderr);
  assert.match(m.stderr, /leaving out .*out-metrics\/grid\.png: generate's overview grid/);
  assert.match(m.stdout, /generated 4 images \(3×16×16\); reference \S+ \(24 images, dataset\)/);
});

test('metrics --num on a built-in data set (a baseline) takes a seeded subset, not its first files', { skip: existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz')) ? false : 'Fashion-MNIST absent' }, () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const m = spawnSync(process.execPath, [main, 'metrics', '--images', 'fashion-mnist-5k', '--num', '16', '--ref', 'fashion-mnist-5k', '--metrics', 'swd', '--seed', '3', '--device', 'cpu', '--threads', '1', '--no-cache'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(m.status, 0, m.stderr);
  assert.match(m.stderr, /a seeded subset \(seed 3\) of 16 of the 5000 images of fashion-mnist-5k/);
  assert.match(m.stdout, /generated 16 images \(1×32×32\)/);
});
