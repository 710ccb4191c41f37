// Ctrl-C / SIGTERM: the CLI finishes the current step, writes a network
// snapshot and a training state for the counter it stopped at, says in
// log.txt how to resume, and exits with 130 (SIGINT) or 143 (SIGTERM); `--resume` then continues from
// exactly that counter. The stop must come within a step, not at the next
// tick (here a tick is ~143 steps).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stateName, TrainingState } from '../src/train/training-state.js';
import { snapshotName } from '../src/model/snapshot.js';
import { readNetworkSnapshot } from '../src/model/snapshot.js';
import { cleanup, makeTempDir, NIMG_PER_STEP, readStats, tinyTrainFlags, writeShapeImages } from './helpers/train-fixtures.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const TICK_KIMG = 1; // ceil(1000 / 7) = 143 steps per tick

let tmp: string;
let data: string;

before(async () => {
  tmp = makeTempDir('train-signals');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined;
    try {
      v = probe();
    } catch {
      v = undefined; // e.g. a stats line caught half-written: look again
    }
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} stops the CLI within a step, saves snapshot + state for the final counter; --resume continues from it`, async () => {
    const outdir = join(tmp, `runs-${signal}`);
    const flags = tinyTrainFlags(data, outdir, 10); // 10 Mimg: far more than the test waits for
    flags[flags.indexOf('--tick') + 1] = String(TICK_KIMG);
    const child = spawn(process.execPath, [MAIN, 'train', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
    try {
      const runDir = await waitFor('the run directory', () => {
        const dirs = existsSync(outdir) ? readdirSync(outdir) : [];
        return dirs.length ? join(outdir, dirs[0]!) : undefined;
      }, 60_000);
      // The first tick's stats line: the run is training.
      const first = await waitFor('a stats.jsonl line', () => readStats(runDir)[0], 90_000);
      assert.ok(first['Progress/kimg']! >= TICK_KIMG);
      const sentAt = Date.now();
      child.kill(signal);
      const { code, signal: killedBy } = await Promise.race([
        exited,
        sleep(60_000, undefined, { ref: false }).then(() => ({ code: -1, signal: null })),
      ]);
      const stopSeconds = (Date.now() - sentAt) / 1000;
      assert.equal(killedBy, null, `the process exited by itself, not by the signal (stderr: ${stderr})`);
      // The shell's code for the signal: 143 for SIGTERM, 130 for SIGINT.
      const expected = signal === 'SIGTERM' ? 143 : 130;
      assert.ok(code === expected || code === 0, `exit code ${expected} (or 0), got ${code}; stderr: ${stderr}`);
      assert.match(stderr, new RegExp(`${signal}: finishing this step and saving the training state`));

      const progress = JSON.parse(readFileSync(join(runDir, 'progress.json'), 'utf8')) as { curNimg: number; finished: boolean; lastSnapshot: string };
      assert.equal(progress.finished, false);
      const stopNimg = progress.curNimg;
      assert.equal(stopNimg % NIMG_PER_STEP, 0, 'the counter stopped on a step boundary');
      // Stopped within a step or so of the signal, long before the next tick (not "at the next tick").
      assert.ok(stopNimg < first['Progress/kimg']! * 1000 + TICK_KIMG * 1000,
        `stopped at ${stopNimg} nimg, not before the next tick at ${first['Progress/kimg']! * 1000 + TICK_KIMG * 1000} (took ${stopSeconds.toFixed(1)} s)`);

      // Snapshot and state for the final counter.
      const statePath = join(runDir, stateName(stopNimg / 1000));
      const snapPath = join(runDir, snapshotName(stopNimg / 1000));
      assert.ok(existsSync(statePath), `${statePath} exists`);
      assert.ok(existsSync(snapPath), `${snapPath} exists`);
      assert.equal(progress.lastSnapshot, snapPath);
      const state = TrainingState.read(statePath);
      assert.equal(state.counters.curNimg, stopNimg);
      const steps = state.counters.step;
      assert.equal(steps * NIMG_PER_STEP, stopNimg);
      const snap = readNetworkSnapshot(snapPath);
      assert.equal(snap.info.kimg, stopNimg / 1000);
      for (const t of snap.weights.values()) t.dispose();
      // The last stats line is the stop's tick.
      const stats = readStats(runDir);
      assert.equal(stats.at(-1)!['Progress/kimg'], stopNimg / 1000);
      assert.equal(stats.at(-1)!['Progress/step'], steps);

      // log.txt says how to resume.
      const log = readFileSync(join(runDir, 'log.txt'), 'utf8');
      assert.ok(log.includes(`Resume with: patch-diffusion train --resume ${runDir}`), log);
      assert.match(stdout, /Resume with: patch-diffusion train --resume/);

      // --resume continues from that counter: two more steps.
      const target = stopNimg + 2 * NIMG_PER_STEP;
      const resumed = spawnSync(process.execPath, [MAIN, 'train', '--resume', runDir, '--duration', String(target / 1e6), '--device', 'cpu', '--threads', '1'], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(resumed.status, 0, resumed.stderr);
      assert.match(resumed.stdout, new RegExp(`Resuming ${statePath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      const after = readStats(runDir).slice(stats.length);
      assert.equal(after.length, 1, 'one tick (the end) after resuming');
      assert.equal(after[0]!['Progress/step'], steps + 2, 'the step count continues');
      assert.equal(after[0]!['Progress/kimg'], target / 1000, 'the image counter continues');
      assert.equal(after[0]!['Progress/tick'], stats.at(-1)!['Progress/tick']! + 1, 'the tick count continues');
      const done = JSON.parse(readFileSync(join(runDir, 'progress.json'), 'utf8')) as { curNimg: number; finished: boolean };
      assert.deepEqual({ curNimg: done.curNimg, finished: done.finished }, { curNimg: target, finished: true });
      assert.equal(TrainingState.read(join(runDir, stateName(target / 1000))).counters.step, steps + 2);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
}
