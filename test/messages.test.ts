// Bad input gets a message that names the file, the value and what was
// expected, and hostile files are not served: each case here used to give a
// raw error (a protobuf varint, ENOTDIR) or to succeed where it should not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDashboard } from '../src/dashboard/server.js';
import { STATE_FORMAT, TrainingState } from '../src/train/training-state.js';
import { readNetworkSnapshot } from '../src/model/snapshot.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { tensor } from '../src/tensor/index.js';
import { train } from '../src/train/train.js';
import { cleanup, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp = '';
before(() => {
  tmp = makeTempDir('pd-messages-');
});
after(() => cleanup(tmp));

test('a training state with broken or missing metadata: the file and the key are named', () => {
  const write = (name: string, meta: Record<string, string>) => {
    const file = join(tmp, name);
    writeSafetensors(file, { w: tensor([1]) }, { format: STATE_FORMAT, options: '{}', network: '{}', adam: '{"step":1}', ...meta });
    return file;
  };
  const broken = write('broken.safetensors', { loop: '{"curNimg": 7,' });
  assert.throws(() => TrainingState.read(broken), new RegExp(`^Error: ${broken}: the training state's metadata 'loop' is not valid JSON`));
  const noCount = write('no-count.safetensors', { loop: '{"curTick": 0, "step": 0, "tickStartNimg": 0, "elapsedSec": 0}' });
  assert.throws(() => TrainingState.read(noCount), new RegExp(`${noCount}: the training state's counters lack a valid 'curNimg' \\(got undefined\\)`));
});

test('--resume of a file that is not a state or a run directory says so', async () => {
  const file = join(tmp, 'not-a-run.txt');
  writeFileSync(file, 'hello');
  await assert.rejects(train({ resume: file, quiet: true }), new RegExp(`--resume: ${file} is neither a run directory nor a training-state-\\*\\.safetensors file`));
});

test('--dry-run catches --cond on a data set without labels', async () => {
  const data = await writeShapeImages(join(tmp, 'data'), { count: 8, size: 16, channels: 1 });
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'runs'), { cond: true, dryRun: true })), /--cond needs labels, but dataset 'data' has none/);
});

test('a bad --outdir is said first, before the data loads; nothing is created', async () => {
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  await assert.rejects(train(tinyTrainRequest(join(tmp, 'no-such-data'), join(file, 'runs'))), new RegExp(`--outdir: ${file} is a file, not a folder`));
});

test('a protocol-0 pickle is named as such, not as a broken safetensors file; a write into a missing folder says so', () => {
  const pkl = join(tmp, 'old.pkl');
  writeFileSync(pkl, '(lp0\nI1\na.');
  assert.throws(() => readNetworkSnapshot(pkl), new RegExp(`${pkl}: a pickle of protocol 0 or 1`));
  assert.throws(() => writeFileAtomic(join(tmp, 'missing', 'x.json'), [new Uint8Array(1)]), new RegExp(`its folder ${join(tmp, 'missing')} does not exist`));
});

test('the dashboard serves a run\'s own grids, not a link named like one', async () => {
  const run = join(tmp, 'run');
  mkdirSync(run);
  writeFileSync(join(run, 'samples-000001.png'), Buffer.from('real'));
  symlinkSync('/etc/hostname', join(run, 'samples-000002.png'));
  const server = await startDashboard({ runDir: run, port: 0, onError: () => {} });
  try {
    assert.equal((await fetch(`${server.url}files/samples-000001.png`)).status, 200);
    assert.equal((await fetch(`${server.url}files/samples-000002.png`)).status, 404);
  } finally {
    await server.close();
  }
});
