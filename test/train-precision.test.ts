// --precision fp16 with the official static loss scaling (--ls) and its
// overflow handling, and --tf32, end to end through train():
// - fp16 trains (float16 image path, float32 master weights) with dropout, and
//   resumes bit for bit;
// - the loss scaling multiplies the gradients and is never divided back out
//   (as the official loop: Adam sees the scaled gradients);
// - a loss scaling too large for float16 overflows the backward pass: the
//   non-finite gradients become 0 / ±1e5 (the official nan_to_num), are
//   counted, and training goes on with finite weights;
// - --tf32 is set for the run and the process's cuDNN/cuBLAS settings are put
//   back after train() returns (library mode), and the run's device line says it.
// On the CPU, fp16 runs with PD_FP16_EMULATED=1 (this CPU has no float16
// arithmetic: correctness, not speed); on CUDA (PD_TEST_DEVICE=cuda, or the
// CUDA-only test at the end, skipped without a GPU) it runs as it would for users.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/train/train.js';
import { buildComponents } from '../src/train/components.js';
import { resolveTrainOptions, type TrainOptionsInput } from '../src/train/options.js';
import { accumulateGradients } from '../src/train/step.js';
import { loadDataset } from '../src/data/index.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { cudaAvailable, cudaMathState, scope, type Tensor } from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import { TEST_DEVICE } from './helpers/device.js';
import { cpuFloat16Kernels } from '../src/nn/precision.js';

/** Debian's libtorch 1.13 has no float16 convolutions on the CPU: fp16 is refused there, so it cannot train. */
const noFloat16 = TEST_DEVICE === 'cpu' && !cpuFloat16Kernels() ? 'this libtorch has no float16 CPU kernels (1.13): fp16 is refused on its CPU' : false;
import { assertSameTensors, cleanup, durationForSteps, listRunFiles, makeTempDir, readStats, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let data: string;
let savedEmulated: string | undefined;

before(async () => {
  tmp = makeTempDir('train-precision');
  data = await writeShapeImages(join(tmp, 'data'));
  savedEmulated = process.env.PD_FP16_EMULATED;
  process.env.PD_FP16_EMULATED = '1';
});
after(() => {
  if (savedEmulated === undefined) delete process.env.PD_FP16_EMULATED;
  else process.env.PD_FP16_EMULATED = savedEmulated;
  cleanup(tmp);
});

function finiteTensors(path: string): { count: number; bad: string[] } {
  const { tensors } = readSafetensors(path);
  const bad: string[] = [];
  for (const [name, t] of tensors) {
    if (t.dtype.startsWith('float') && !t.allFinite()) bad.push(name);
    t.dispose();
  }
  return { count: tensors.size, bad };
}

const fp16 = { precision: 'fp16', lossScaling: 100, dropout: 0.1 } as const;

test('fp16 with --ls 100 and dropout: trains to finite float32 weights and resumes bit for bit', { skip: noFloat16 }, async () => {
  const a = await train(tinyTrainRequest(data, join(tmp, 'a'), { ...fp16, duration: durationForSteps(4) }));
  assert.ok(a && !a.stoppedEarly);
  const log = readFileSync(join(a.runDir, 'log.txt'), 'utf8');
  assert.match(log, /precision fp16/);
  const snap = finiteTensors(a.lastSnapshot!);
  assert.deepEqual(snap.bad, []);
  const { tensors } = readSafetensors(a.lastSnapshot!);
  for (const [name, t] of tensors) {
    if (name.endsWith('weight')) assert.equal(t.dtype, 'float32', `${name}: the master weights stay float32`);
    t.dispose();
  }

  const b1 = await train(tinyTrainRequest(data, join(tmp, 'b'), { ...fp16, duration: durationForSteps(2) }));
  const b = await train({ resume: b1!.runDir, duration: durationForSteps(4), quiet: true });
  assert.ok(b && !b.stoppedEarly);
  assert.equal(b.curNimg, a.curNimg);
  const last = (dir: string) => join(dir, listRunFiles(dir, /^training-state-\d+\.safetensors$/).at(-1)!);
  assert.ok(assertSameTensors(last(a.runDir), last(b.runDir)) > 0);
});

test('static loss scaling: the gradients are the loss scaling times the unscaled ones, not divided back', { skip: noFloat16 }, async () => {
  const dataset = await loadDataset(data, { labels: false });
  const gradsWith = (lossScaling: number, precision: 'fp32' | 'fp16'): Tensor[] => {
    const { quiet: _quiet, ...input } = tinyTrainRequest(data, join(tmp, 'unused'));
    const options = resolveTrainOptions({ ...(input as TrainOptionsInput), precision, lossScaling, dropout: 0.1 });
    const c = buildComponents(options, dataset, TEST_DEVICE);
    accumulateGradients({ options, components: c, curNimg: 0, totalNimg: 1e6 });
    return c.netParams.map((p) => p.grad!.detach().clone());
  };
  scope(() => {
    // fp32: scaling by a power of two is exact, so the gradients are exactly 8× (the draws are the same: same seed).
    const g1 = gradsWith(1, 'fp32');
    const g8 = gradsWith(8, 'fp32');
    for (let k = 0; k < g1.length; k++) assert.equal(g8[k]!.sub(g1[k]!.mul(8)).abs().amax().item(), 0, `parameter ${k}: not exactly 8×`);
    // fp16: the same up to float16 rounding of the activations' gradients (the scaling moves which of them flush to zero).
    const h1 = gradsWith(1, 'fp16');
    const h64 = gradsWith(64, 'fp16');
    let num = 0, den = 0;
    for (let k = 0; k < h1.length; k++) {
      assert.equal(h64[k]!.dtype, 'float32', 'gradients of the float32 master weights are float32');
      num += h64[k]!.sub(h1[k]!.mul(64)).square().sum().item();
      den += h1[k]!.mul(64).square().sum().item();
    }
    assert.ok(den > 0 && Math.sqrt(num / den) < 2e-2, `fp16 gradients with --ls 64 vs 64 × those with --ls 1: relative difference ${Math.sqrt(num / den)}`);
  });
});

test('fp16 overflow: a loss scaling too large for float16 gives non-finite gradients, replaced as the official loop does, and training goes on', { skip: noFloat16 }, async () => {
  const outdir = join(tmp, 'overflow');
  const r = await train(tinyTrainRequest(data, outdir, { precision: 'fp16', lossScaling: 1e9, duration: durationForSteps(3) }));
  assert.ok(r && !r.stoppedEarly);
  const stats = readStats(r.runDir);
  assert.ok(stats.every((s) => s['Loss/nonfinite_grad_steps'] === 1), `every step overflows at --ls 1e9: ${JSON.stringify(stats.map((s) => s['Loss/nonfinite_grad_steps']))}`);
  assert.ok(stats.every((s) => Number.isFinite(s['Loss/loss'])), 'the loss itself (float32) stays finite');
  assert.deepEqual(finiteTensors(r.lastSnapshot!).bad, []);
  const states = listRunFiles(r.runDir, /^training-state-\d+\.safetensors$/);
  assert.deepEqual(finiteTensors(join(r.runDir, states.at(-1)!)).bad, [], 'weights, EMA and Adam moments stay finite');
  assert.match(readFileSync(join(r.runDir, 'log.txt'), 'utf8'), /non-finite gradients in 1 steps \(replaced\)/);
  // The same run at fp32 does not overflow: it is float16's range, not the loss.
  const f = await train(tinyTrainRequest(data, join(tmp, 'overflow-fp32'), { lossScaling: 1e9, duration: durationForSteps(1) }));
  assert.deepEqual(readStats(f!.runDir).map((s) => s['Loss/nonfinite_grad_steps']), [0]);
});

test('--tf32: on for the run, the process\'s cuDNN/cuBLAS settings put back after train() returns; the device line says it', async () => {
  // A state no run sets, to see it come back: autotuner on, TF32 for cuDNN only, not deterministic (libtorch's TF32 defaults).
  native.cudaMathOptions(true, true, false, false);
  const before = cudaMathState();
  assert.deepEqual(before, { benchmark: true, tf32Cudnn: true, tf32Cublas: false, deterministic: false });
  for (const tf32 of [true, false]) {
    const seen: ReturnType<typeof cudaMathState>[] = [];
    const r = await train(tinyTrainRequest(data, join(tmp, `tf32-${tf32}`), { tf32, duration: durationForSteps(1), onEvent: () => seen.push(cudaMathState()) }));
    assert.ok(seen.length > 0);
    for (const s of seen) assert.deepEqual([s.tf32Cudnn, s.tf32Cublas], [tf32, tf32], `during the run: TF32 ${tf32}`);
    assert.deepEqual(cudaMathState(), before, 'restored after train() returns');
    const expected = !tf32 ? 'TF32 off' : TEST_DEVICE.startsWith('cuda') ? 'TF32 on' : 'TF32 on (CUDA only: no effect on the CPU)';
    const line = readFileSync(join(r!.runDir, 'log.txt'), 'utf8').split('\n').find((l) => l.startsWith('Threads: '));
    assert.equal(line, `Threads: 1, device: ${TEST_DEVICE}, ${expected}`);
    const saved = JSON.parse(readFileSync(join(r!.runDir, 'training_options.json'), 'utf8')) as { tf32: boolean };
    assert.equal(saved.tf32, tf32);
  }
  // A run that fails after setting it (its data folder is missing) restores them too.
  await assert.rejects(train(tinyTrainRequest(join(tmp, 'no-such-data'), join(tmp, 'tf32-bad'), { tf32: true, duration: durationForSteps(1) })));
  assert.deepEqual(cudaMathState(), before);
  // A resume may change it (a hardware setting, like --device or --precision).
  const runs = readdirSync(join(tmp, 'tf32-false'));
  const resumed = await train({ resume: join(tmp, 'tf32-false', runs[0]!), duration: durationForSteps(2), tf32: true, quiet: true });
  assert.match(readFileSync(join(resumed!.runDir, 'log.txt'), 'utf8'), /Resuming with .*--tf32 true \(was false\)/);
});

test('on CUDA: fp16 training with --ls and --tf32 a few steps, finite, and the settings restored', { skip: cudaAvailable() ? false : 'no CUDA device' }, async () => {
  const before = cudaMathState();
  const r = await train(tinyTrainRequest(data, join(tmp, 'cuda-fp16'), { device: 'cuda', precision: 'fp16', lossScaling: 100, dropout: 0.1, tf32: true, duration: durationForSteps(3) }));
  assert.ok(r && !r.stoppedEarly);
  const stats = readStats(r.runDir);
  assert.ok(stats.every((s) => Number.isFinite(s['Loss/loss'])));
  assert.deepEqual(finiteTensors(r.lastSnapshot!).bad, []);
  assert.match(readFileSync(join(r.runDir, 'log.txt'), 'utf8'), /device: cuda, TF32 on/);
  assert.deepEqual(cudaMathState(), before);
});
