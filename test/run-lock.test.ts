// One training process per run directory: a second `train` on a run that is
// being trained stops before writing anything, naming the owner; a lock left
// by a dead process is taken over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, RunLock } from '../src/train/run-lock.js';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp = '';
before(() => {
  tmp = makeTempDir('pd-run-lock-');
});
after(() => cleanup(tmp));

test('RunLock: one holder; a live owner is named; a dead one on this host is stale; another host is not guessed at', () => {
  const dir = join(tmp, 'plain');
  mkdirSync(dir);
  const lock = RunLock.acquire(dir);
  assert.throws(() => RunLock.acquire(dir), new RegExp(`in use by process ${process.pid} \\(since .*delete ${join(dir, LOCK_FILE).replace(/[.]/g, '\\.')}`));
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  RunLock.acquire(dir).release();

  // A pid that is not running (above the kernel's pid_max) on this host: stale, taken over.
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 30, host: hostname(), started: 'then' }));
  const taken = RunLock.acquire(dir);
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  taken.release();

  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1234, host: 'other-machine', started: 'then' }));
  assert.throws(() => RunLock.acquire(dir), /in use by process 1234 on other-machine/);
});

test('a second train --resume on a run being trained stops before writing; the run is whole', async () => {
  const data = await writeShapeImages(join(tmp, 'data'), { count: 24, size: 16, channels: 1 });
  const first = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1) }));
  const runDir = first!.runDir;
  // The second attempt's outcome, caught at once (it fails while the first is still running).
  let second: Promise<unknown> | null = null;
  const resumed = await train({
    resume: runDir,
    duration: durationForSteps(4),
    quiet: true,
    onEvent: (e) => {
      if (e.type === 'start') second = train({ resume: runDir, duration: durationForSteps(6), quiet: true }).then(() => null, (err: unknown) => err);
    },
  });
  assert.ok(second);
  const failure = await second;
  assert.match(String((failure as Error | null)?.message), /in use by process/);
  assert.ok(resumed && !resumed.stoppedEarly);
  const ticks = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)['Progress/tick'] as number);
  assert.deepEqual(ticks, [0, 1, 2, 3], 'every tick once');
  assert.equal(existsSync(join(runDir, LOCK_FILE)), false, 'released at the end');
});
