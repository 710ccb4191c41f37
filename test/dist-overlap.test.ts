// The gradient all-reduce overlapped with backward (native/dist.cc's
// distBackwardOverlapped, DDP's overlap), two ranks on loopback (Gloo):
// - the collective itself: many small buckets launched from autograd's hooks
//   give, bit for bit, the blocking all-reduce's means and the exact float32
//   values, with an earlier accumulation round, a channels-last parameter, a
//   parameter unused on one rank in the last round and one never used;
// - the training step hands only its last accumulation round's backward to
//   the process group (the earlier rounds' gradients are not final: DDP's
//   no_sync), and waits for the mean after it;
// - training: PD_DIST_OVERLAP=1 (the default) with small buckets and
//   PD_DIST_OVERLAP=0 give the same weights, EMA and Adam moments after a few
//   steps, with one accumulation round per step and with two.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../src/data/index.js';
import { launchRanks } from '../src/distributed/launch.js';
import { gradientSyncSettings } from '../src/distributed/process-group.js';
import { buildComponents } from '../src/train/components.js';
import { resolveTrainOptions } from '../src/train/options.js';
import { trainingStep } from '../src/train/step.js';
import { useThreads, type Tensor } from '../src/tensor/index.js';
import { assertSameTensors, cleanup, durationForSteps, listRunFiles, makeTempDir, tinyTrainFlags, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';
import { runCli } from './helpers/dist-run.js';

let tmp: string;
let data: string;
before(async () => {
  tmp = makeTempDir('dist-overlap');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

test('overlapped all-reduce: the blocking all-reduce\'s means, bit for bit, and the exact values (many buckets, unused parameters, two rounds)', async () => {
  const worker = fileURLToPath(new URL('./helpers/dist-overlap-worker.js', import.meta.url));
  assert.equal(await launchRanks({ nproc: 2, script: worker, args: [tmp], graceSec: 5 }), 0);
  for (const rank of [0, 1]) {
    const { steps } = JSON.parse(readFileSync(join(tmp, `overlap-rank-${rank}.json`), 'utf8')) as {
      steps: { caps: number[]; report: { buckets: number; launchedDuringBackward: number; unusedParams: number }; sameAsBlocking: boolean; exact: boolean; sameLayout: boolean }[];
    };
    assert.equal(steps.length, 4);
    for (const [k, s] of steps.entries()) {
      const at = `rank ${rank}, step ${k} (buckets of ${s.caps.join('/')} bytes)`;
      assert.ok(s.sameAsBlocking, `${at}: the overlapped means differ from the blocking all-reduce's`);
      assert.ok(s.exact, `${at}: the means are not (a0 + a1) / 2 in float32`);
      assert.ok(s.sameLayout, `${at}: the channels-last gradient changed layout`);
      // Parameter 4 is never used; parameter 3 not in the last round on odd ranks.
      assert.equal(s.report.unusedParams, rank === 1 ? 2 : 1, at);
      assert.equal(s.report.launchedDuringBackward, s.report.buckets, `${at}: every bucket is out before backward returns`);
    }
    // DDP's assignment, from the last parameter: a bucket closes once it reaches its cap (the first one's smaller).
    // 512/128: [1024 B] [1028] [12+20+384+400] [8448]; 96/96: [1024] [1028] [12+20+384] [400] [8448]; 25 MiB: one.
    assert.deepEqual(steps.map((s) => s.report.buckets), [4, 4, 5, 1]);
  }
});

test('PD_DIST_OVERLAP and PD_DIST_BUCKET_MB: defaults and errors', () => {
  assert.deepEqual(gradientSyncSettings({}), { overlap: true, bucketBytes: 25 * 2 ** 20 });
  assert.deepEqual(gradientSyncSettings({ PD_DIST_OVERLAP: '0', PD_DIST_BUCKET_MB: '0.5' }), { overlap: false, bucketBytes: 2 ** 19 });
  assert.throws(() => gradientSyncSettings({ PD_DIST_OVERLAP: 'yes' }), /PD_DIST_OVERLAP="yes" must be 0/);
  assert.throws(() => gradientSyncSettings({ PD_DIST_BUCKET_MB: '0' }), /PD_DIST_BUCKET_MB="0" must be a positive number/);
});

test('the training step: the last round\'s backward goes to the process group, the earlier rounds\' do not', async () => {
  useThreads(1);
  const { quiet: _q, ...input } = tinyTrainRequest(data, join(tmp, 'unused'), { batchGpu: 1 });
  const o = resolveTrainOptions(input as never, 2);
  const ds = await loadDataset(o.data, { resolution: o.resolution, channels: o.channels, labels: o.cond, maxImages: o.maxImages, seed: o.seed });
  const c = buildComponents(o, ds, 'cpu', { rank: 0, worldSize: 2 });
  const events: string[] = [];
  const dist = {
    backward(loss: Tensor, params: readonly Tensor[]) {
      assert.equal(params, c.netParams);
      events.push('dist.backward');
      loss.backward();
    },
    averageGradients(params: readonly Tensor[]) {
      assert.equal(params, c.netParams);
      events.push('averageGradients');
    },
  };
  trainingStep({ options: o, components: c, curNimg: 0, totalNimg: 1000, dist, onRound: () => events.push('round') });
  assert.deepEqual(events, ['round', 'dist.backward', 'round', 'averageGradients'], 'two rounds of one image each on this rank');
});

const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((f) => /^\d{5}-/.test(f))!);
const lastState = (runDir: string) => join(runDir, listRunFiles(runDir, /^training-state-\d+\.safetensors$/).at(-1)!);

async function train(name: string, env: NodeJS.ProcessEnv, extra: string[]): Promise<string> {
  const outdir = join(tmp, name);
  const r = await runCli(['train', '--nproc', '2', ...tinyTrainFlags(data, outdir, durationForSteps(3)), ...extra], env, 300);
  assert.equal(r.code, 0, `${name} failed:\n${r.stderr}`);
  return lastState(runDirOf(outdir));
}

for (const [what, extra] of [['one accumulation round per step', []], ['two accumulation rounds per step (--batch-gpu 1)', ['--batch-gpu', '1']]] as const) {
  test(`training, ${what}: overlapped (2 KiB buckets) ≡ blocking, bit for bit after 3 steps`, async () => {
    const tag = extra.length ? 'rounds2' : 'rounds1';
    const blocking = await train(`${tag}-blocking`, { PD_DIST_OVERLAP: '0' }, [...extra]);
    const overlapped = await train(`${tag}-overlapped`, { PD_DIST_BUCKET_MB: String(2 / 1024) }, [...extra]);
    assert.ok(assertSameTensors(overlapped, blocking, ['net.', 'ema.', 'adam.']) > 30);
  });
}
