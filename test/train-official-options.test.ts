// The official train.py options end to end: --precond vp | ve | edm (EDM's
// whole-image preconditioners and losses) and --augment (EDM's augment pipe,
// its labels fed to the network), each trained briefly and resumed exactly;
// their run directories, snapshot metadata and sampling; and the errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { train } from '../src/train/train.js';
import { readNetworkSnapshot } from '../src/train/checkpoint.js';
import { generate } from '../src/generate/generate.js';
import { assertSameTensors, cleanup, listRunFiles, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let data: string;
before(async () => {
  tmp = makeTempDir('train-official-options');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

const N = 2;
const MODES = [
  { precond: 'vp', augment: 0.5 },
  { precond: 've', augment: 0 },
  { precond: 'edm', augment: 0.3 },
  { precond: 'pedm', augment: 0.5 },
] as const;

for (const mode of MODES) {
  test(`--precond ${mode.precond}${mode.augment ? ` --augment ${mode.augment}` : ''}: trains, names its run, and resumes bit for bit`, async () => {
    // Images counted per step: batch 4 × batch_mul_avg (1.9 for pedm's patch mix, 1 on whole images), floored.
    const perStep = mode.precond === 'pedm' ? 7 : 4;
    const extra = { precond: mode.precond, augment: mode.augment, tick: (N * perStep) / 1000 };
    const tag = `${mode.precond}-${mode.augment}`;
    const a = await train(tinyTrainRequest(data, join(tmp, `a-${tag}`), { ...extra, duration: (2 * N * perStep) / 1e6 }));
    assert.ok(a && !a.stoppedEarly);
    assert.equal(a.curNimg, 2 * N * perStep);
    assert.match(basename(a.runDir), new RegExp(`^\\d{5}-data-uncond-small-${mode.precond}-batch4$`));

    const snap = readNetworkSnapshot(a.lastSnapshot!);
    const config = snap.info.network as Record<string, unknown>;
    assert.equal(config.precond ?? 'edm', mode.precond === 'pedm' ? 'edm' : mode.precond);
    assert.equal(config.img_channels, mode.precond === 'pedm' ? 5 : 3, 'coordinate channels only for pedm');
    assert.equal(config.augment_dim ?? 0, mode.augment ? 9 : 0);
    assert.equal((snap.info.trainingOptions as Record<string, unknown>).augment, mode.augment);
    for (const t of snap.weights.values()) t.dispose();

    const b1 = await train(tinyTrainRequest(data, join(tmp, `b-${tag}`), { ...extra, duration: (N * perStep) / 1e6 }));
    assert.ok(b1);
    const b = await train({ resume: b1.runDir, duration: (2 * N * perStep) / 1e6, quiet: true });
    assert.ok(b && !b.stoppedEarly);
    assert.equal(b.curNimg, a.curNimg);
    const last = (dir: string) => join(dir, listRunFiles(dir, /^training-state-\d{6}\.safetensors$/).at(-1)!);
    assert.ok(assertSameTensors(last(a.runDir), last(b.runDir)) > 20);
    assertSameTensors(a.lastSnapshot!, b.lastSnapshot!);

    // The snapshot samples, with EDM's sampler and with the ablation sampler.
    const g = await generate({ network: a.runDir, outdir: join(tmp, `g-${tag}`), seeds: [0, 1], steps: 3, grid: false, quiet: true, threads: 1, device: 'cpu' });
    assert.equal(g.files.length, 2);
    const v = await generate({ network: a.runDir, outdir: join(tmp, `v-${tag}`), seeds: [0], steps: 3, grid: false, quiet: true, threads: 1, device: 'cpu',
      solver: 'euler', discretization: 'vp', schedule: 'vp', scaling: 'vp' });
    assert.equal(v.files.length, 1);
  });
}

test('bad option values are refused by name', async () => {
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 'vp', realP: 0.5 })), /--real-p: --precond vp trains on whole images .*got 0\.5/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 've', progressive: true })), /--progressive: --precond ve trains on whole images/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { augment: 1.5 })), /--augment: .*got 1\.5/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { augment: -0.1 })), /--augment: .*got -0\.1/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 'xp' as never })), /--precond: .*got "xp"/);
  await assert.rejects(train({ ...tinyTrainRequest(data, join(tmp, 'x')), transfer: 'a.pkl', resume: 'b' }), /--transfer and --resume cannot be combined/);
});
