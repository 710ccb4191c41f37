// A corrupted training state is never resumed: its checksum fails, the
// resume passes over it to the newest state that verifies and says so in
// the run's log, and a run with no good state left stops with the reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/train/train.js';
import { readNetworkSnapshot } from '../src/model/snapshot.js';
import { cleanup, durationForSteps, makeTempDir, safetensorsBytes, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp = '';
let data = '';
before(async () => {
  tmp = makeTempDir('pd-state-checksum-');
  data = await writeShapeImages(join(tmp, 'data'), { count: 24, size: 16, channels: 1 });
});
after(() => cleanup(tmp));

/** Flips 4 KB (or what there is) in the middle of a file's data, as a failing disk would. */
function corrupt(file: string): void {
  const bytes = readFileSync(file);
  const from = Math.floor(bytes.length * 0.6);
  for (let i = from; i < Math.min(bytes.length, from + 4096); i++) bytes[i] = bytes[i]! ^ 0xff;
  writeFileSync(file, bytes);
}

test('a resume passes over a state that fails its checksum, names it, and continues from the newest good one', async () => {
  const first = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(2), snap: 100 }));
  const runDir = first!.runDir;
  const good = join(runDir, 'training-state-000000.safetensors');
  // A newer state, then damaged: what the resume would otherwise pick.
  const newer = join(runDir, 'training-state-000001.safetensors');
  copyFileSync(good, newer);
  corrupt(newer);
  const lines: string[] = [];
  const resumed = await train({ resume: runDir, duration: durationForSteps(4), quiet: false, log: (l) => lines.push(l) });
  assert.ok(resumed && !resumed.stoppedEarly);
  assert.equal(resumed.curNimg, durationForSteps(4) * 1e6);
  const warning = lines.find((l) => l.startsWith('warning: passing over'));
  assert.ok(warning?.includes(newer) && /does not match the checksum/.test(warning), lines.join('\n'));
  assert.ok(lines.includes(`Resuming ${good}`), lines.join('\n'));
  assert.match(readFileSync(join(runDir, 'log.txt'), 'utf8'), /warning: passing over .*training-state-000001/);

  // The same run without the damaged file ends with the same weights: nothing of it was used.
  const clean = await train(tinyTrainRequest(data, join(tmp, 'clean'), { duration: durationForSteps(2), snap: 100 }));
  const cleanEnd = await train({ resume: clean!.runDir, duration: durationForSteps(4), quiet: true });
  const a = safetensorsBytes(resumed.lastSnapshot!), b = safetensorsBytes(cleanEnd!.lastSnapshot!);
  for (const [name, t] of a.tensors) assert.ok(t.bytes.equals(b.tensors.get(name)!.bytes), `${name} differs`);
  readNetworkSnapshot(resumed.lastSnapshot!).weights.forEach((t) => t.dispose());
});

test('no good state left: the resume stops with each file and why; a named bad file points at the one before it', async () => {
  const first = await train(tinyTrainRequest(data, join(tmp, 'bad'), { duration: durationForSteps(1), snap: 100 }));
  const state = join(first!.runDir, 'training-state-000000.safetensors');
  const older = join(first!.runDir, 'training-state-000000.safetensors');
  const named = join(first!.runDir, 'training-state-000002.safetensors');
  copyFileSync(state, named);
  corrupt(named);
  await assert.rejects(train({ resume: named, quiet: true }), (e: Error) => e.message.includes(`${named} cannot be used`) && e.message.includes(`--resume ${older}`));
  corrupt(state);
  await assert.rejects(train({ resume: first!.runDir, quiet: true }), /no usable training state in .*\n.*training-state-000002.*\n.*training-state-000000/);
});
