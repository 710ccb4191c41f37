// What a resume may change, said and enforced: fixed settings refused by
// name, changed ones logged, paths stored absolute, a finished run left
// alone, ticks past the resumed state superseded, a changed data set named
// as such; and a failed --transfer leaves no empty run directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { train } from '../src/train/train.js';
import { runCli } from '../src/cli/program.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp = '';
let data = '';
before(async () => {
  tmp = makeTempDir('pd-resume-semantics-');
  data = await writeShapeImages(join(tmp, 'data'), { count: 24, size: 16, channels: 1 });
});
after(() => cleanup(tmp));

const ticksOf = (runDir: string) =>
  readFileSync(join(runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((e) => 'Progress/tick' in e).map((e) => e['Progress/tick']);

test('fixed settings are refused by name, changed ones logged; defaults of the CLI are not changes; data is stored absolute', async () => {
  const rel = relative(process.cwd(), data);
  const first = await train(tinyTrainRequest(rel, join(tmp, 'fixed'), { duration: durationForSteps(1) }));
  const saved = JSON.parse(readFileSync(join(first!.runDir, 'training_options.json'), 'utf8')) as { data: string };
  assert.ok(isAbsolute(saved.data) && saved.data === data, saved.data);
  const given = { resume: first!.runDir, arch: 'ddpmpp', lr: 0.5 } as unknown as Parameters<typeof train>[0];
  await assert.rejects(train(given), /--arch "ddpmpp": cannot change when resuming \(the run's is "small"\)\n--lr 0\.5: cannot change/);
  // The same value is no change.
  const lines: string[] = [];
  const same = { resume: first!.runDir, arch: 'small', duration: durationForSteps(2), quiet: false, log: (l: string) => lines.push(l) } as unknown as Parameters<typeof train>[0];
  await train(same);
  assert.ok(lines.some((l) => /^Resuming with --duration 0\.000014 \(was 0\.000007\)/.test(l)), lines.join('\n'));
  // The CLI passes only what was typed: its defaults (--arch ddpmpp, --outdir runs) are not changes.
  const code = await runCli(['train', '--resume', first!.runDir, '--duration', String(durationForSteps(3)), '--threads', '1', '--device', 'cpu']);
  assert.equal(code, 0);
});

test('a finished run is left alone without a longer duration', async () => {
  const first = await train(tinyTrainRequest(data, join(tmp, 'finished'), { duration: durationForSteps(2) }));
  const files = readdirSync(first!.runDir).filter((f) => f.endsWith('.safetensors'));
  const mtimes = files.map((f) => statSync(join(first!.runDir, f)).mtimeMs);
  const again = await train({ resume: first!.runDir, quiet: true });
  assert.equal(again?.alreadyFinished, true);
  assert.equal(again?.curNimg, first!.curNimg);
  assert.deepEqual(files.map((f) => statSync(join(first!.runDir, f)).mtimeMs), mtimes, 'nothing rewritten');
});

test('resuming an older state supersedes the ticks written after it', async () => {
  const first = await train(tinyTrainRequest(data, join(tmp, 'stale'), { duration: durationForSteps(2) }));
  const state = join(first!.runDir, 'training-state-000000.safetensors');
  copyFileSync(state, `${state}.kept`);
  await train({ resume: first!.runDir, duration: durationForSteps(4), quiet: true });
  assert.deepEqual(ticksOf(first!.runDir), [0, 1, 2, 3]);
  // Back to the state at tick 1 (as if the process that went on had died before saving again), then on to the end.
  copyFileSync(`${state}.kept`, state);
  await train({ resume: first!.runDir, duration: durationForSteps(4), quiet: true });
  assert.deepEqual(ticksOf(first!.runDir), [0, 1, 2, 3], 'each tick once');
});

test('a data set that changed is named as such', async () => {
  const own = await writeShapeImages(join(tmp, 'growing'), { count: 24, size: 16, channels: 1 });
  const first = await train(tinyTrainRequest(own, join(tmp, 'changed'), { duration: durationForSteps(1) }));
  await writeShapeImages(join(tmp, 'more'), { count: 2, size: 16, channels: 1 });
  for (const f of readdirSync(join(tmp, 'more'))) copyFileSync(join(tmp, 'more', f), join(own, `extra-${f}`));
  await assert.rejects(train({ resume: first!.runDir, duration: durationForSteps(2), quiet: true }), /the data set changed since this state was saved: 24 items then, 26 now/);
});

test('a failed --transfer leaves no run directory behind', async () => {
  const outdir = join(tmp, 'transfer');
  await assert.rejects(train(tinyTrainRequest(data, outdir, { transfer: join(tmp, 'no-such.pkl') })), /--transfer: .*no-such\.pkl does not exist/);
  assert.ok(!existsSync(outdir) || readdirSync(outdir).length === 0, existsSync(outdir) ? readdirSync(outdir).join(', ') : '');
});
