// The official train.py options end to end: --precond vp | ve | edm (EDM's
// whole-image preconditioners and losses) and --augment (EDM's augment pipe,
// its labels fed to the network), each trained briefly and resumed exactly;
// their run directories, snapshot metadata and sampling; and the errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { train, type TrainRequest } from '../src/train/train.js';
import { readNetworkSnapshot } from '../src/model/snapshot.js';
import { generate } from '../src/generate/generate.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../src/data/index.js';
import { fillBatch } from '../src/data/sampler.js';
import { readFileSync } from 'node:fs';
import { decodeSimplePng } from '../src/data/png.js';
import { encodeToLatents, openVae, PreEncodedLatents } from '../src/latents/codec.js';
import { Generator, scope, tensor } from '../src/tensor/index.js';
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

// ---- latent Patch Diffusion ---------------------------------------------------------------------
// The tiny random VAE of test/fixtures/vae (diffusers' AutoencoderKL layout, 4× downsampling, 4 latent
// channels): 16×16 RGB images become 4×4×4 latents, patch sizes 2 and 4.
const VAE = fileURLToPath(new URL('../../test/fixtures/vae/', import.meta.url));

for (const preEncode of [false, true]) {
  test(`--latents${preEncode ? ' --pre-encode' : ''}: trains on VAE latents, resumes bit for bit, and generate decodes to images`, async () => {
    const perStep = 6; // batch 4 × batch_mul_avg 1.5 (latent mode at real_p 0.5)
    const extra = { latents: true, vae: VAE, preEncode, tick: (N * perStep) / 1000 };
    const tag = preEncode ? 'pre' : 'fly';
    const a = await train(tinyTrainRequest(data, join(tmp, `la-${tag}`), { ...extra, duration: (2 * N * perStep) / 1e6 }));
    assert.ok(a && !a.stoppedEarly);
    assert.equal(a.curNimg, 2 * N * perStep);
    const snap = readNetworkSnapshot(a.lastSnapshot!);
    for (const t of snap.weights.values()) t.dispose();
    const config = snap.info.network as Record<string, unknown>;
    assert.deepEqual([config.img_resolution, config.img_channels, config.out_channels], [4, 6, 4], 'latent resolution 4, 4 latent + 2 coordinate channels in');
    assert.equal(snap.info.latent?.scalingFactor, 0.18215);
    assert.equal(existsSync(join(a.runDir, 'latent-posteriors.safetensors')), preEncode);

    const b1 = await train(tinyTrainRequest(data, join(tmp, `lb-${tag}`), { ...extra, duration: (N * perStep) / 1e6 }));
    assert.ok(b1);
    const b = await train({ resume: b1.runDir, duration: (2 * N * perStep) / 1e6, quiet: true });
    assert.ok(b && !b.stoppedEarly);
    const last = (dir: string) => join(dir, listRunFiles(dir, /^training-state-\d{6}\.safetensors$/).at(-1)!);
    assertSameTensors(last(a.runDir), last(b.runDir));

    const g = await generate({ network: a.runDir, outdir: join(tmp, `lg-${tag}`), seeds: [0, 1], steps: 3, quiet: true, threads: 1, device: 'cpu' });
    assert.equal(g.files.length, 2);
    const png = decodeSimplePng(readFileSync(g.files[0]!));
    assert.ok(png);
    assert.deepEqual([png.width, png.height, png.channels], [16, 16, 3], 'decoded to the image resolution');
  });
}

test('pre-encoded posteriors draw the same latents as encoding on the fly', async () => {
  const dataset = await loadDataset(data, {});
  const vae = openVae(VAE, 'cpu');
  try {
    const indices = [3, 0, 7, 5];
    const pre = PreEncodedLatents.encode(vae, dataset, dataset.length, 5);
    const fromStore = pre.sample(indices, new Generator(9), vae.config.scalingFactor, 'cpu');
    const { images } = fillBatch(dataset, indices);
    const pixels = tensor(images, [4, 3, 16, 16], { dtype: 'uint8' }).to('float32').div(127.5).sub(1);
    const onTheFly = encodeToLatents(vae, pixels, new Generator(9));
    const err = scope(() => fromStore.sub(onTheFly).abs().amax().item() / onTheFly.abs().amax().item());
    assert.ok(err < 1e-5, `differ by ${err} (relative)`);
    pre.dispose();
  } finally {
    vae.dispose();
  }
});

test('--mask-pos trains with zeroed coordinates, and generate samples it that way by default', async () => {
  const a = await train(tinyTrainRequest(data, join(tmp, 'mask'), { maskPos: true, duration: 14 / 1e6, tick: 0.007 }));
  assert.ok(a);
  const out = (name: string, extra: Record<string, unknown> = {}) =>
    generate({ network: a.runDir, outdir: join(tmp, name), seeds: [5], steps: 3, grid: false, quiet: true, threads: 1, device: 'cpu', ...extra });
  const byDefault = readFileSync((await out('m-default')).files[0]!);
  const masked = readFileSync((await out('m-masked', { maskPos: true })).files[0]!);
  const withGrid = readFileSync((await out('m-grid', { maskPos: false })).files[0]!);
  assert.ok(byDefault.equals(masked), 'a --mask-pos network samples with zeroed coordinates unless told otherwise');
  assert.ok(!byDefault.equals(withGrid), 'the coordinates reach the network when not masked');
});

test('--max-minutes stops cleanly with the state saved, and the run resumes', async () => {
  const a = await train(tinyTrainRequest(data, join(tmp, 'budget'), { maxMinutes: 0.02, duration: 1, tick: 0.007 }));
  assert.ok(a && a.stoppedEarly && a.timeLimitReached);
  assert.ok(listRunFiles(a.runDir, /^training-state-\d{6}\.safetensors$/).length > 0);
  const b = await train({ resume: a.runDir, maxMinutes: 0.01, quiet: true });
  assert.ok(b && b.curNimg > a.curNimg, 'the resumed run continued');
});

test('bad option values are refused by name', async () => {
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 'vp', maskPos: true })), /--mask-pos: --precond vp has no coordinate channels/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { latents: true })), /--vae: latent diffusion needs the Stable Diffusion VAE: download diffusion_pytorch_model\.safetensors .*huggingface\.co\/stabilityai\/sd-vae-ft-ema/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { latents: true, vae: join(tmp, 'nowhere') })), /--vae: .*nowhere does not exist; latent diffusion needs/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { latents: true, vae: VAE, channels: 1 })), /--latents: .* encodes 3-channel images, but .* has 1 \(use --channels 3\)/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { preEncode: true })), /--pre-encode: only with --latents/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 'vp', realP: 0.5 })), /--real-p: --precond vp trains on whole images .*got 0\.5/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 've', progressive: true })), /--progressive: --precond ve trains on whole images/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { augment: 1.5 })), /--augment: .*got 1\.5/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { augment: -0.1 })), /--augment: .*got -0\.1/);
  await assert.rejects(train(tinyTrainRequest(data, join(tmp, 'x'), { precond: 'xp' as never })), /--precond: .*got "xp"/);
  // The types refuse the combination; a JavaScript caller gets the error at run time.
  await assert.rejects(train({ ...tinyTrainRequest(data, join(tmp, 'x')), transfer: 'a.pkl', resume: 'b' } as unknown as TrainRequest), /--transfer and --resume cannot be combined/);
});
