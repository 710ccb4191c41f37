// Exact resume: a run trained for 2N steps in one go and a run trained for N
// steps, stopped, and resumed to 2N must end in bit-identical training
// states (network, EMA, Adam moments, generator states) and counters, and in
// identical final snapshots. N is chosen so that the LR ramp and the EMA
// half-life ramp (both driven by the image counter) straddle the resume point.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/train/train.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { learningRate } from '../src/train/schedule.js';
import {
  assertSameTensors, cleanup, durationForSteps, listRunFiles, makeTempDir, NIMG_PER_STEP, readStats, tinyTrainRequest, writeShapeImages,
} from './helpers/train-fixtures.js';

const N = 3;
let tmp: string;
let data: string;

before(async () => {
  process.env.PD_BF16_EMULATED = '1'; // the bf16 case runs on CPUs without bf16 arithmetic too (slowly)
  tmp = makeTempDir('train-resume');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

function loopOf(statePath: string): Record<string, unknown> {
  const { tensors, metadata } = readSafetensors(statePath);
  for (const t of tensors.values()) t.dispose();
  return JSON.parse(metadata.loop!) as Record<string, unknown>;
}

// The same in every compute mode: fp32 NCHW (the default), and bf16 with channels-last.
const MODES = [
  { name: 'fp32', precision: 'fp32', channelsLast: false },
  { name: 'bf16, channels-last', precision: 'bf16', channelsLast: true },
] as const;
const finalSnapshots = new Map<string, string>();

for (const mode of MODES) test(`train 2N = ${2 * N} steps ≡ train N steps, stop, resume to 2N (bit for bit; ${mode.name})`, async () => {
  // Ticks every N steps, so both runs tick (and count ticks) at the same counters.
  const tick = (N * NIMG_PER_STEP) / 1000;
  const extra = { tick, precision: mode.precision, channelsLast: mode.channelsLast };
  const tag = mode.precision + (mode.channelsLast ? '-cl' : '');
  const a = await train(tinyTrainRequest(data, join(tmp, `runs-a-${tag}`), { duration: durationForSteps(2 * N), ...extra }));
  assert.ok(a && !a.stoppedEarly);
  assert.equal(a.curNimg, 2 * N * NIMG_PER_STEP);

  const b1 = await train(tinyTrainRequest(data, join(tmp, `runs-b-${tag}`), { duration: durationForSteps(N), ...extra }));
  assert.ok(b1);
  assert.equal(b1.curNimg, N * NIMG_PER_STEP);
  // The ramp is still running at the resume point: the resumed half must pick it up from the counter.
  assert.ok(learningRate(1e-3, b1.curNimg, 0.035) < 1e-3);
  const [stateB1] = listRunFiles(b1.runDir, /^training-state-\d{6}\.safetensors$/);
  assert.ok(stateB1, 'run B wrote a training state');
  const midLoop = loopOf(join(b1.runDir, stateB1));
  assert.equal(midLoop.curNimg, N * NIMG_PER_STEP);
  assert.equal(midLoop.step, N);

  const b = await train({ resume: b1.runDir, duration: durationForSteps(2 * N), quiet: true });
  assert.ok(b && !b.stoppedEarly);
  assert.equal(b.runDir, b1.runDir, 'resuming continues in the same run directory');
  assert.equal(b.curNimg, a.curNimg);

  const stateA = join(a.runDir, listRunFiles(a.runDir, /^training-state-\d{6}\.safetensors$/).at(-1)!);
  const stateB = join(b.runDir, listRunFiles(b.runDir, /^training-state-\d{6}\.safetensors$/).at(-1)!);
  // Every tensor: net.*, ema.*, adam.exp_avg.*, adam.exp_avg_sq.*, rng.*.
  const compared = assertSameTensors(stateA, stateB);
  for (const prefix of ['net.', 'ema.', 'adam.exp_avg.', 'adam.exp_avg_sq.', 'rng.']) {
    assert.ok(assertSameTensors(stateA, stateB, [prefix]) > 0, `the state holds ${prefix}* tensors`);
  }
  assert.ok(compared > 20);

  // Counters, Adam's step and the data sampler's position; only the wall-clock total may differ.
  const metaA = readSafetensors(stateA), metaB = readSafetensors(stateB);
  for (const t of [...metaA.tensors.values(), ...metaB.tensors.values()]) t.dispose();
  const loopA = JSON.parse(metaA.metadata.loop!), loopB = JSON.parse(metaB.metadata.loop!);
  delete loopA.elapsedSec;
  delete loopB.elapsedSec;
  assert.deepEqual(loopB, loopA);
  assert.equal(loopA.step, 2 * N);
  assert.equal(loopA.curNimg, 2 * N * NIMG_PER_STEP);
  assert.equal(loopA.snapshots, 2, 'the snapshot count (which paces --metrics-every) carries across the resume');
  assert.deepEqual(JSON.parse(metaB.metadata.adam!), JSON.parse(metaA.metadata.adam!));
  assert.equal(JSON.parse(metaA.metadata.adam!).step, 2 * N);

  // The final snapshots (the EMA network) are identical too.
  assert.ok(a.lastSnapshot && b.lastSnapshot);
  assertSameTensors(a.lastSnapshot, b.lastSnapshot);
  // ... and so are the stats the two runs logged per tick, apart from timing and resources.
  const strip = (s: Record<string, number>) => Object.fromEntries(Object.entries(s).filter(([k]) => k.startsWith('Progress/') || k.startsWith('Loss/') || k.startsWith('Schedule/')));
  assert.deepEqual(readStats(b.runDir).map(strip), readStats(a.runDir).map(strip));
  assert.match(readFileSync(join(b.runDir, 'log.txt'), 'utf8'), /Resuming .*training-state-\d{6}\.safetensors/);
  finalSnapshots.set(mode.name, a.lastSnapshot);
});

test('the compute modes really differ: bf16 training ends elsewhere than fp32', { skip: MODES.length < 2 && 'one mode' }, () => {
  const [fp32, bf16] = MODES.map((m) => finalSnapshots.get(m.name));
  assert.ok(fp32 && bf16, 'both resume tests ran');
  assert.throws(() => assertSameTensors(fp32, bf16), /tensors differ/);
});

test('resuming is not a no-op: without the saved state the continuation differs', async () => {
  // Guards the test above against comparing two things that cannot differ:
  // a fresh run of N steps ends elsewhere than the first N steps of a 2N run would continue.
  const fresh = await train(tinyTrainRequest(data, join(tmp, 'runs-c'), { duration: durationForSteps(N), tick: (N * NIMG_PER_STEP) / 1000 }));
  const full = await train(tinyTrainRequest(data, join(tmp, 'runs-d'), { duration: durationForSteps(2 * N), tick: (N * NIMG_PER_STEP) / 1000 }));
  assert.ok(fresh && full);
  assert.throws(() => assertSameTensors(fresh.lastSnapshot!, full.lastSnapshot!), /tensors differ/);
});

test('--resume errors name the path', async () => {
  await assert.rejects(train({ resume: join(tmp, 'no-such-run'), quiet: true }), /--resume: .*no-such-run does not exist/);
  await assert.rejects(train({ resume: data, quiet: true }), /--resume: no training-state-\*\.safetensors in .*data/);
});
