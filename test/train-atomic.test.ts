// Snapshots and training states are written atomically: a process killed in
// the middle of rewriting a file, or a write that fails half-way (a full
// disk), leaves the previous file intact under its name, readable and
// byte-identical, and the failure is reported with the path and the cause.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs, { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '../src/train/train.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { findLatestState, TrainingState } from '../src/train/training-state.js';
import { buildComponents } from '../src/train/components.js';
import { resolveTrainOptions, type TrainOptionsInput } from '../src/train/options.js';
import { loadDataset } from '../src/data/index.js';
import { tensor } from '../src/tensor/index.js';
import { cleanup, durationForSteps, makeTempDir, NIMG_PER_STEP, safetensorsBytes, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let data: string;
let runDir: string;
let statePath: string;

before(async () => {
  tmp = makeTempDir('train-atomic');
  data = await writeShapeImages(join(tmp, 'data'));
  const r = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(2) }));
  assert.ok(r);
  runDir = r.runDir;
  statePath = findLatestState(runDir);
});
after(() => cleanup(tmp));

const tempFiles = (dir: string) => readdirSync(dir).filter((f) => f.includes('.tmp'));

/** Replaces fs.writeSync (as seen by every ESM importer) for the duration of `fn`. */
async function withWriteSync(replacement: typeof fs.writeSync, fn: () => Promise<void> | void): Promise<void> {
  const original = fs.writeSync;
  fs.writeSync = replacement;
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    fs.writeSync = original;
    syncBuiltinESMExports();
  }
}

test('SIGKILL in the middle of rewriting a training state leaves the previous file intact', () => {
  const before = readFileSync(statePath);
  const tensorsBefore = safetensorsBytes(statePath);
  // A child process rewrites the same file with 32 MB of new tensors and is
  // SIGKILLed by itself after a few MB have reached the disk.
  const distSrc = fileURLToPath(new URL('../src/', import.meta.url));
  const child = join(tmp, 'killed-writer.mjs');
  writeFileSync(child, `
    import fs from 'node:fs';
    import { syncBuiltinESMExports } from 'node:module';
    const { writeSafetensors } = await import(${JSON.stringify(join(distSrc, 'io/safetensors.js'))});
    const { tensor } = await import(${JSON.stringify(join(distSrc, 'tensor/index.js'))});
    const big = {};
    for (let k = 0; k < 8; k++) big['t' + k] = tensor(new Float32Array(1 << 20).fill(k + 0.5));
    let calls = 0, written = 0;
    const write = fs.writeSync;
    fs.writeSync = (...args) => {
      if (++calls === 5) { process.stdout.write('written ' + written + '\\n'); process.kill(process.pid, 'SIGKILL'); }
      const n = write(...args);
      written += n;
      return n;
    };
    syncBuiltinESMExports();
    writeSafetensors(process.argv[2], big, { format: 'overwritten' });
    process.stdout.write('finished\\n');
  `);
  const res = spawnSync(process.execPath, [child, statePath], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.signal, 'SIGKILL', `the writer was killed mid-write (status ${res.status}, stderr ${res.stderr})`);
  assert.match(res.stdout, /^written \d+/);
  assert.ok(!res.stdout.includes('finished'));
  const partial = Number(/written (\d+)/.exec(res.stdout)![1]);
  assert.ok(partial > 1 << 20, `some MB had been written (${partial} bytes)`);

  // The final name still holds the old, complete file.
  assert.ok(readFileSync(statePath).equals(before), 'the training state is byte-identical after the kill');
  const after = safetensorsBytes(statePath);
  assert.equal(after.metadata.format, 'patch-diffusion/training-state@1');
  assert.deepEqual([...after.tensors.keys()].sort(), [...tensorsBefore.tensors.keys()].sort());
  for (const [name, t] of tensorsBefore.tensors) assert.ok(after.tensors.get(name)!.bytes.equals(t.bytes), name);
  // What the kill left is a hidden temporary file beside it, never the final name, and resume ignores it.
  const leftovers = tempFiles(runDir);
  assert.equal(leftovers.length, 1, `one temporary file left: ${leftovers.join(', ')}`);
  assert.match(leftovers[0]!, /^\.training-state-\d{6}\.safetensors\.tmp-\d+$/);
  assert.ok(statSync(join(runDir, leftovers[0]!)).size >= partial);
  assert.equal(findLatestState(runDir), statePath);
  const state = TrainingState.read(statePath);
  assert.equal(state.counters.curNimg, 2 * NIMG_PER_STEP);
  fs.rmSync(join(runDir, leftovers[0]!));
});

test('the run resumes from the state that survived the kill', async () => {
  const r = await train({ resume: runDir, duration: durationForSteps(3), quiet: true });
  assert.ok(r);
  assert.equal(r.curNimg, 3 * NIMG_PER_STEP);
});

test('a write that fails half-way (disk full, I/O error) keeps the previous file, removes its temporary file and says why', async () => {
  // A real TrainingState.save over the existing state file.
  const input = tinyTrainRequest(data, join(tmp, 'unused'));
  delete input.quiet;
  const options = resolveTrainOptions(input as TrainOptionsInput);
  const dataset = await loadDataset(data, { labels: false });
  const c = buildComponents(options, dataset, 'cpu');
  const state = new TrainingState(c, { curNimg: 999, curTick: 9, step: 99, tickStartNimg: 999, elapsedSec: 1, snapshots: 0 });
  const meta = { options: options as never, info: { network: c.networkConfig, dataset: { name: 'x', resolution: 16, channels: 3, labelDim: 0 }, kimg: 1 } };
  const target = findLatestState(runDir);
  const before = readFileSync(target);

  for (const [code, expected] of [
    ['ENOSPC', /cannot write .*training-state-\d{6}\.safetensors: the disk is full \(the previous file, if any, is unchanged\)/],
    ['EIO', /cannot write .*training-state-\d{6}\.safetensors: .*EIO/],
  ] as const) {
    let calls = 0;
    const original = fs.writeSync;
    await withWriteSync(((...args: Parameters<typeof fs.writeSync>) => {
      if (++calls === 3) throw Object.assign(new Error(`${code}: simulated failure, write`), { code });
      return (original as (...a: unknown[]) => number)(...args);
    }) as typeof fs.writeSync, () => {
      assert.throws(() => state.save(target, meta), expected);
    });
    assert.ok(calls >= 3, 'the failure happened after part of the file was written');
    assert.ok(readFileSync(target).equals(before), `${code}: the previous state is byte-identical`);
    assert.deepEqual(tempFiles(runDir), [], `${code}: no temporary file is left behind`);
    assert.equal(TrainingState.read(target).counters.curNimg, 3 * NIMG_PER_STEP);
  }

  // Without the failure the same call replaces the file in one piece.
  state.save(target, meta);
  assert.equal(TrainingState.read(target).counters.curNimg, 999);
  assert.deepEqual(tempFiles(runDir), []);
});

test('writing into a directory that does not exist names the path and the cause', () => {
  const t = tensor([1, 2, 3]);
  const path = join(tmp, 'no-such-dir', 'network-snapshot-000000.safetensors');
  assert.throws(() => writeSafetensors(path, { t }), (e: Error) => {
    assert.ok(e.message.includes(`cannot write ${path}: its folder ${join(tmp, 'no-such-dir')} does not exist`), e.message);
    return true;
  });
  t.dispose();
  assert.ok(!fs.existsSync(join(tmp, 'no-such-dir')));
  // And reading back a file that is not there names it too.
  assert.throws(() => readSafetensors(path), new RegExp(`cannot read ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});
