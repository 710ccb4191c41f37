// The NaN path: non-finite gradients are replaced (nan_to_num as in the official loop),
// counted per tick in stats.jsonl ('Loss/nonfinite_grad_steps') and in the
// status line, and training goes on with finite weights; a run whose loss
// stays NaN/Inf aborts with a clear "diverged" error after the streak limit
// instead of crashing or training on garbage forever.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/train/train.js';
import { trainingLoop } from '../src/train/training-loop.js';
import { buildComponents } from '../src/train/components.js';
import { resolveTrainOptions, type TrainOptionsInput } from '../src/train/options.js';
import { RunLog } from '../src/train/run-dir.js';
import { loadDataset } from '../src/data/index.js';
import { sanitizeGradients, tensor } from '../src/tensor/index.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { cleanup, durationForSteps, makeTempDir, NIMG_PER_STEP, readStats, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let data: string;

before(async () => {
  tmp = makeTempDir('train-nonfinite');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

function allFinite(path: string): { tensors: number; bad: string[] } {
  const { tensors } = readSafetensors(path);
  const bad: string[] = [];
  for (const [name, t] of tensors) {
    if (t.dtype.startsWith('float') && !t.toArray().every(Number.isFinite)) bad.push(name);
    t.dispose();
  }
  return { tensors: tensors.size, bad };
}

test('sanitizeGradients: NaN → 0, +Inf → 1e5, −Inf → −1e5, and counts the parameters that had any', () => {
  const a = tensor([1, 2, 3, 4]).requiresGrad_();
  const b = tensor([1, 2]).requiresGrad_();
  a.mul(tensor([NaN, Infinity, -Infinity, 2])).sum().backward();
  b.mul(tensor([3, 4])).sum().backward();
  assert.equal(sanitizeGradients([a, b]), 1);
  assert.deepEqual(a.grad!.toArray(), [0, 1e5, -1e5, 2]);
  assert.deepEqual(b.grad!.toArray(), [3, 4]);
  assert.equal(sanitizeGradients([a, b]), 0, 'nothing left to replace');
});

test('NaN losses in some steps: counted in stats.jsonl and the log, training goes on and ends with finite weights', async () => {
  const input = tinyTrainRequest(data, join(tmp, 'runs-injected'), { duration: durationForSteps(6) });
  delete input.quiet;
  const options = resolveTrainOptions(input as TrainOptionsInput);
  const dataset = await loadDataset(data, { labels: false });
  const components = buildComponents(options, dataset, 'cpu');
  // Steps 3 and 4 (one accumulation round each) get a NaN loss, so every gradient is NaN.
  const lossFn = components.lossFn;
  let call = 0;
  components.lossFn = (images, labels, patchSize) => {
    const loss = lossFn(images, labels, patchSize);
    call += 1;
    return call === 3 || call === 4 ? loss.mul(NaN) : loss;
  };
  const runDir = join(tmp, 'runs-injected', 'run');
  mkdirSync(runDir, { recursive: true });
  const result = await trainingLoop({ options, dataset, components, runDir, log: new RunLog(runDir) });
  assert.equal(result.stoppedEarly, false);
  assert.equal(result.curNimg, 6 * NIMG_PER_STEP, 'all six steps ran');
  assert.equal(call, 6);

  const stats = readStats(runDir);
  assert.equal(stats.length, 6, 'one tick per step');
  assert.deepEqual(stats.map((s) => s['Loss/nonfinite_grad_steps']), [0, 0, 1, 1, 0, 0]);
  // The NaN steps' loss is reported as not a number (JSON null), the others as numbers.
  assert.deepEqual(stats.map((s) => typeof s['Loss/loss']), ['number', 'number', 'object', 'object', 'number', 'number']);
  assert.ok(stats.every((s) => s['Loss/loss'] === null || Number.isFinite(s['Loss/loss'])));
  const log = readFileSync(join(runDir, 'log.txt'), 'utf8');
  assert.equal((log.match(/non-finite gradients in 1 steps \(replaced\)/g) ?? []).length, 2, log);
  assert.match(log, /Done:/);

  // The replaced gradients kept everything finite: network, EMA and Adam moments.
  const check = allFinite(result.lastSnapshot!);
  assert.deepEqual(check.bad, [], 'snapshot tensors are finite');
  const state = allFinite(join(runDir, 'training-state-000000.safetensors'));
  assert.ok(state.tensors > 0);
  assert.deepEqual(state.bad, [], 'training-state tensors are finite');
});

test('a diverging run (lr 1e6) reports non-finite gradients per tick, then aborts with a clear "diverged" error', async () => {
  const outdir = join(tmp, 'runs-diverge');
  // 200 steps allowed; the loss turns NaN within a few steps, and 50 NaN rounds in a row stop the run.
  const request = tinyTrainRequest(data, outdir, { duration: durationForSteps(200), lr: 1e6, lrRampup: 0, tick: (5 * NIMG_PER_STEP) / 1000 });
  await assert.rejects(train(request), (e: Error) => {
    assert.match(e.message, /the loss has been NaN\/Inf for 50 rounds in a row at kimg \d+\.\d: training diverged \(try a lower --lr\)/);
    return true;
  });
  const [run] = readdirSync(outdir);
  const runDir = join(outdir, run!);
  const stats = readStats(runDir);
  assert.ok(stats.length >= 2, 'ticks were logged before the abort');
  assert.ok(stats.some((s) => s['Loss/nonfinite_grad_steps']! > 0), 'non-finite gradients are counted in stats.jsonl');
  assert.equal(stats.at(-1)!['Loss/loss'], null, 'the last ticks have a NaN loss');
  // It stopped at the streak limit, not at the end of the 200 steps.
  assert.ok(stats.at(-1)!['Progress/step']! < 60, `aborted early (last tick at step ${stats.at(-1)!['Progress/step']})`);
  assert.match(readFileSync(join(runDir, 'log.txt'), 'utf8'), /loss NaN .*non-finite gradients in \d+ steps \(replaced\)/);
});
