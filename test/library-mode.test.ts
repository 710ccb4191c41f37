// The library as a program uses it: train() reports typed events, stops on an
// AbortSignal with a resumable state, and leaves the process as it found it
// (nothing on stdout, no signal handlers, libtorch's thread count back); a
// trained run loads as a DiffusionModel that samples into memory, the same
// pixels `generate` writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { train, trainWithEvents } from '../src/train/train.js';
import type { TrainingEvent } from '../src/train/events.js';
import { DiffusionModel } from '../src/model/diffusion-model.js';
import { generate } from '../src/generate/generate.js';
import { getNumThreads, setNumThreads } from '../src/tensor/index.js';
import { captureWrites } from './helpers/capture.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp = '';
let data = '';
before(async () => {
  tmp = makeTempDir('pd-library-');
  data = await writeShapeImages(join(tmp, 'data'), { count: 24, size: 16, channels: 1 });
});
after(() => cleanup(tmp));

test('train() in library mode: typed events in order, nothing on stdout, no signal handlers, threads restored', async () => {
  const { quiet: _quiet, ...request } = tinyTrainRequest(data, join(tmp, 'events'), { duration: durationForSteps(3), snap: 3, dump: 3, threads: 2 });
  setNumThreads(1);
  const listeners = process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');
  const events: TrainingEvent[] = [];
  let listenersDuring = -1;
  const { value: result, written } = await captureWrites(process.stdout, () =>
    train({
      ...request,
      onEvent: (e) => {
        events.push(e);
        listenersDuring = process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');
      },
    }),
  );
  assert.equal(written, '', 'a library call writes nothing to stdout unless asked');
  assert.equal(listenersDuring, listeners, 'no signal handlers while training');
  assert.equal(getNumThreads(), 1, "libtorch's thread count is put back");
  assert.ok(result && !result.stoppedEarly);
  // A snapshot at tick 0 and at the end (snap 3), the state at the end (dump 3).
  assert.deepEqual(events.map((e) => e.type), ['start', 'tick', 'snapshot', 'tick', 'tick', 'snapshot', 'state']);
  const ticks = events.filter((e): e is Extract<TrainingEvent, { type: 'tick' }> => e.type === 'tick');
  for (const t of ticks) {
    for (const v of [t.kimg, t.loss, t.imagesPerSec, t.learningRate, t.elapsedSec, t.rssGb]) assert.ok(Number.isFinite(v), JSON.stringify(t));
    assert.ok(Math.abs(t.totalKimg - durationForSteps(3) * 1000) < 1e-9, `totalKimg ${t.totalKimg}`);
  }
  assert.equal(ticks.at(-1)!.remainingSec, 0);
  const snapshot = events.filter((e) => e.type === 'snapshot').at(-1)!;
  assert.ok(snapshot.type === 'snapshot' && existsSync(snapshot.path) && existsSync(snapshot.gridPath));
  assert.equal(snapshot.path, result.lastSnapshot);

  // Asked for, the status lines come to a function (and still go to log.txt).
  const lines: string[] = [];
  await train({ ...tinyTrainRequest(data, join(tmp, 'log')), quiet: false, log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => l.startsWith('tick 0 ')), lines.join('\n'));
});

test('an AbortSignal stops the run after the step in progress, with a state that resumes to the end', async () => {
  const stop = new AbortController();
  const request = tinyTrainRequest(data, join(tmp, 'abort'), { duration: durationForSteps(6), snap: 100, dump: 100 });
  const first = await train({
    ...request,
    signal: stop.signal,
    onEvent: (e) => {
      if (e.type === 'tick' && e.tick === 1) stop.abort();
    },
  });
  assert.ok(first?.stoppedEarly, 'stopped early');
  assert.equal(first.curNimg, durationForSteps(3) * 1e6, 'the step after the abort is the last');
  assert.ok(readdirSync(first.runDir).some((f) => /^training-state-\d+\.safetensors$/.test(f)), 'a training state was written');
  const rest = await train({ resume: first.runDir, quiet: true });
  assert.ok(rest && !rest.stoppedEarly);
  assert.equal(rest.curNimg, durationForSteps(6) * 1e6);

  const aborted = AbortSignal.abort();
  await assert.rejects(train({ ...request, signal: aborted }), { name: 'AbortError' });
});

test('trainWithEvents: the same events as an async iterator, the result beside it', async () => {
  const run = trainWithEvents(tinyTrainRequest(data, join(tmp, 'iterator'), { duration: durationForSteps(2) }));
  const types: string[] = [];
  for await (const e of run.events) types.push(e.type);
  const result = await run.result;
  assert.ok(result);
  assert.deepEqual(types.filter((t) => t === 'tick').length, 2);
  assert.equal(types[0], 'start');

  // A failure ends the iterator with the error.
  const failing = trainWithEvents(tinyTrainRequest(join(tmp, 'no-such-data'), join(tmp, 'iterator-bad')));
  await assert.rejects(async () => {
    for await (const _ of failing.events) void _;
  }, /no-such-data/);
});

test('DiffusionModel samples into memory: the bytes generate writes, per seed, in either layout', async () => {
  const r = await train(tinyTrainRequest(data, join(tmp, 'model'), { duration: durationForSteps(2) }));
  const model = DiffusionModel.load(r!.runDir, { device: 'cpu' });
  try {
    assert.equal(model.resolution, 16);
    const c = model.channels;
    assert.equal(c, model.info!.dataset.channels);
    const size = 16 * 16 * c;
    const images = model.sample({ seeds: [5, 9], steps: 3 });
    assert.deepEqual([images.count, images.height, images.width, images.channels, images.layout, images.data.length], [2, 16, 16, c, 'nhwc', 2 * size]);
    // An image depends only on its seed, not on the batch it was drawn in.
    const alone = model.sample({ seeds: [9], steps: 3 });
    assert.deepEqual(alone.data, images.data.subarray(size));
    // NCHW holds the same pixels, channel planes first.
    const planar = model.sample({ seeds: [9], steps: 3, layout: 'nchw' }).data;
    for (let i = 0; i < 16 * 16; i++) for (let k = 0; k < c; k++) assert.equal(planar[k * 256 + i], alone.data[i * c + k]);
    // generate writes these pixels.
    const out = join(tmp, 'generated');
    await generate({ network: r!.runDir, outdir: out, seeds: [5, 9], steps: 3, quiet: true, device: 'cpu', threads: 1 });
    const png = await sharp(join(out, '000009.png')).raw().toBuffer();
    assert.deepEqual(new Uint8Array(png), alone.data);
    assert.throws(() => model.sample({ seeds: [] }), /no seeds/);
    assert.throws(() => model.sample({ seeds: [2 ** 32] }), /seed 4294967296/);
  } finally {
    model.dispose();
  }
});
