// ONNX export of the denoiser: D from onnxruntime (onnxruntime-node, and
// Python's onnxruntime when installed) equals our libtorch D within 1e-4
// relative (max |diff| / max |D|) for every architecture and preconditioner,
// at the training resolution and at twice it, from one file with dynamic
// batch and canvas; the official reference networks export too; a layer the
// exporter cannot write is named in the error; the CLI writes a file
// onnxruntime loads, with the metadata a web page needs.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readSafetensors } from '../src/io/safetensors.js';
import { createNetwork, parseNetworkConfig, presetConfig, type NetworkConfig, type PresetName } from '../src/networks/config.js';
import type { Preconditioner } from '../src/networks/precond.js';
import { Linear } from '../src/nn/linear.js';
import { decodeModel, exportDenoiser, exportModel, OnnxExportError, ONNX_OPS_USED, ONNX_OPSET } from '../src/onnx/index.js';
import { saveNetworkSnapshot } from '../src/model/snapshot.js';
import { DiffusionModel } from '../src/model/diffusion-model.js';
import { Generator, cat, noGrad, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { HAVE_REFERENCE, REFERENCE_DIR } from './helpers/reference.js';
import { cleanup, makeTempDir } from './helpers/train-fixtures.js';

const TOL = 1e-4;
const tmp = makeTempDir('onnx');
after(() => cleanup(tmp));

/** Full-image coordinates of the top-left size×size window of a res×res grid (channel 0 column, 1 row); beyond res they extend past 1. */
function coords(n: number, size: number, res: number): Tensor {
  return scope(() => {
    const line = tensor(Array.from({ length: size }, (_, k) => (k / (res - 1) - 0.5) * 2));
    const xs = line.reshape(1, 1, 1, size).expand(n, 1, size, size);
    const ys = line.reshape(1, 1, size, 1).expand(n, 1, size, size);
    return cat([xs, ys], 1).contiguous();
  });
}

/** One-hot labels, class k % dim for sample k. */
function oneHot(n: number, dim: number): Tensor {
  return tensor(Array.from({ length: n * dim }, (_, i) => (i % dim === Math.floor(i / dim) % dim ? 1 : 0)), [n, dim]);
}

/**
 * Replaces every parameter with random values of a trained network's scale:
 * a fresh EDM network has zero (ADM) or 1e-5 (DDPM++/NCSN++) output layers,
 * so its D is c_skip·x and would hide a wrong UNet.
 */
function perturb(net: Preconditioner, g: Generator): void {
  noGrad(() => {
    for (const [name, p] of net.namedParameters())
      scope(() => {
        const noise = g.randn([...p.shape]);
        if (/norm\d?\.|_norm\./.test(name)) p.copy_(name.endsWith('weight') ? noise.mul(0.2).add(1) : noise.mul(0.2));
        else p.copy_(p.ndim > 1 ? noise.div(Math.sqrt(p.numel / p.shape[0]!)) : noise.mul(0.1));
      });
  });
}

const session = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });

interface Inputs {
  x: Tensor;
  sigma: Tensor;
  xPos: Tensor | null;
  labels: Tensor | null;
}

function feedsOf(inp: Inputs): Record<string, ort.Tensor> {
  const f = (t: Tensor) => new ort.Tensor('float32', t.data() as Float32Array, [...t.shape]);
  return {
    x: f(inp.x),
    sigma: f(inp.sigma),
    ...(inp.xPos ? { x_pos: f(inp.xPos) } : {}),
    ...(inp.labels ? { class_labels: f(inp.labels) } : {}),
  };
}

/** max |a − b| / max |b|. */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

function makeInputs(net: Preconditioner, g: Generator, n: number, size: number, sigmas: number[]): Inputs {
  return {
    x: g.randn([n, net.outChannels, size, size]).mul(1.5),
    sigma: tensor(sigmas.slice(0, n)),
    xPos: net.positionChannels ? coords(n, size, net.imgResolution) : null,
    labels: net.labelDim ? oneHot(n, net.labelDim) : null,
  };
}

/** Runs D in libtorch and in onnxruntime; returns the relative error, and how much of D the UNet makes (max |D − c_skip·x| / max |D|). */
async function compare(net: Preconditioner, sess: ort.InferenceSession, inp: Inputs): Promise<{ rel: number; unetShare: number; D: Float32Array }> {
  const D = noGrad(() => net.forward(inp.x, inp.sigma, inp.xPos, inp.labels));
  const out = (await sess.run(feedsOf(inp))).denoised!;
  assert.deepEqual([...out.dims], [...D.shape]);
  const d = D.data() as Float32Array;
  const skipOnly = scope(() => {
    const s = inp.sigma.reshape(-1, 1, 1, 1);
    return (net.kind === 'edm' ? s.square().add(net.sigmaData ** 2).reciprocal().mul(net.sigmaData ** 2).mul(inp.x) : inp.x).data() as Float32Array;
  });
  return { rel: relMax(out.data as Float32Array, d), unetShare: relMax(skipOnly, d), D: d };
}

const SMALL = { model_channels: 32, channel_mult: [1, 2], num_blocks: 1, attn_resolutions: [8] };

interface Case {
  name: string;
  preset: PresetName;
  precond?: 'edm' | 'vp' | 've';
  coordinates?: boolean;
  labelDim?: number;
  overrides?: Partial<NetworkConfig>;
  sigmas: number[];
}
const CASES: Case[] = [
  { name: 'DDPM++ (edm, coordinates)', preset: 'ddpmpp', overrides: { ...SMALL, dropout: 0.1 }, sigmas: [0.4, 6] },
  { name: 'NCSN++ (edm, coordinates)', preset: 'ncsnpp', overrides: SMALL, sigmas: [0.4, 6] },
  { name: 'ADM (edm, coordinates; 2-head attention)', preset: 'adm', overrides: { ...SMALL, channel_mult: [1, 4], dropout: 0.1 }, sigmas: [0.4, 6] },
  { name: 'small (ddpmpp-cpu, edm, coordinates)', preset: 'ddpmpp-cpu', sigmas: [0.4, 6] },
  { name: 'DDPM++ (edm, no coordinates, class-conditional)', preset: 'ddpmpp', coordinates: false, labelDim: 4, overrides: SMALL, sigmas: [0.4, 6] },
  { name: 'ADM (edm, coordinates, class-conditional)', preset: 'adm', labelDim: 3, overrides: SMALL, sigmas: [0.4, 6] },
  { name: 'DDPM++ (vp)', preset: 'ddpmpp', precond: 'vp', coordinates: false, overrides: SMALL, sigmas: [0.4, 6] },
  { name: 'NCSN++ (ve)', preset: 'ncsnpp', precond: 've', coordinates: false, overrides: SMALL, sigmas: [0.4, 6] },
  {
    name: 'SongUNet skip encoder + skip decoder, FIR [1,3,3,1], implicit MLP (edm, coordinates)',
    preset: 'ddpmpp',
    overrides: { ...SMALL, channel_mult: [1, 2, 2], encoder_type: 'skip', decoder_type: 'skip', resample_filter: [1, 3, 3, 1], implicit_mlp: true },
    sigmas: [0.4, 6],
  },
];

const figures: string[] = [];
after(() => {
  if (figures.length) console.log(`ONNX parity, max |D_ort − D_torch| / max |D_torch|:\n${figures.join('\n')}`);
});

describe('ONNX export matches libtorch (onnxruntime-node)', () => {
  for (const [k, c] of CASES.entries()) {
    test(`${c.name}: at the training resolution and at 2×`, async () => {
      const g = new Generator(100 + k);
      const config = presetConfig(c.preset, {
        imgResolution: 16, precond: c.precond, coordinates: c.coordinates, labelDim: c.labelDim, dropout: 0, overrides: c.overrides,
      });
      const net = createNetwork(config, { generator: g });
      try {
        perturb(net, g);
        net.eval();
        const r = exportDenoiser(net);
        for (const op of r.opTypes) assert.ok((ONNX_OPS_USED as readonly string[]).includes(op), op);
        assert.deepEqual(r.inputs.map((i) => i.name), ['x', 'sigma', ...(net.positionChannels ? ['x_pos'] : []), ...(net.labelDim ? ['class_labels'] : [])]);
        const sess = await session(r.bytes);
        assert.deepEqual(sess.inputNames, r.inputs.map((i) => i.name));
        assert.deepEqual(sess.outputNames, ['denoised']);
        const rels: string[] = [];
        for (const size of [16, 32]) {
          const { rel, unetShare } = await compare(net, sess, makeInputs(net, g, 2, size, c.sigmas));
          assert.ok(rel < TOL, `${size}×${size}: relative error ${rel}`);
          assert.ok(unetShare > 0.05, `${size}×${size}: the UNet makes only ${unetShare} of D; the check would be weak`);
          rels.push(`${size}×${size} ${rel.toExponential(1)}`);
        }
        figures.push(`  ${c.name}: ${rels.join(', ')}`);
        await sess.release();
      } finally {
        net.dispose();
      }
    });
  }

  test('dynamic batch: N = 1 and N = 3 from one model give the same per-sample D', async () => {
    const g = new Generator(7);
    const net = createNetwork(presetConfig('ncsnpp', { imgResolution: 16, labelDim: 2, dropout: 0, overrides: SMALL }), { generator: g });
    try {
      perturb(net, g);
      net.eval();
      const sess = await session(exportDenoiser(net).bytes);
      const three = makeInputs(net, g, 3, 16, [0.1, 1, 20]);
      const all = await compare(net, sess, three);
      assert.ok(all.rel < TOL, `N = 3: ${all.rel}`);
      const per = 3 * 16 * 16;
      for (let k = 0; k < 3; k++) {
        const one: Inputs = scope(() => ({
          x: three.x.narrow(0, k, 1).contiguous(), sigma: three.sigma.narrow(0, k, 1).contiguous(),
          xPos: three.xPos!.narrow(0, k, 1).contiguous(), labels: three.labels!.narrow(0, k, 1).contiguous(),
        }));
        const out = (await sess.run(feedsOf(one))).denoised!;
        assert.deepEqual([...out.dims], [1, 3, 16, 16]);
        const rel = relMax(out.data as Float32Array, all.D.subarray(k * per, (k + 1) * per));
        assert.ok(rel < TOL, `sample ${k} alone vs in the batch of 3: ${rel}`);
      }
      // A non-square canvas works too (sides multiples of size_multiple).
      const wide = await compare(net, sess, { x: g.randn([1, 3, 8, 24]), sigma: tensor([2]), xPos: g.randn([1, 2, 8, 24]), labels: oneHot(1, 2) });
      assert.ok(wide.rel < TOL, `8×24: ${wide.rel}`);
      await sess.release();
    } finally {
      net.dispose();
    }
  });
});

describe('ONNX export of the reference networks (official Patch_EDMPrecond)', { skip: HAVE_REFERENCE ? false : `reference vectors not found in ${REFERENCE_DIR}` }, () => {
  for (const name of ['net_ddpmpp', 'net_ncsnpp', 'net_adm', 'net_ddpmpp_cond']) {
    test(`${name}: equals libtorch at 16×16 (and the official D) and at 32×32, and the official 8×8 patch D`, async () => {
      const { tensors, metadata } = readSafetensors(join(REFERENCE_DIR, `${name}.safetensors`));
      const net = createNetwork(parseNetworkConfig(JSON.parse(metadata.config!)), { initialize: false });
      try {
        const params = new Map<string, Tensor>();
        for (const [k, v] of tensors) if (k.startsWith('param.')) params.set(k.slice('param.'.length), v);
        net.loadStateDict(params, { strict: true });
        net.eval();
        const sess = await session(exportDenoiser(net).bytes);
        const t = (k: string) => tensors.get(k)!;
        const labels = tensors.get('in.class_labels') ?? null;
        const full: Inputs = { x: t('in.x'), sigma: t('in.sigma'), xPos: t('in.x_pos'), labels };
        const r16 = await compare(net, sess, full);
        assert.ok(r16.rel < TOL, `16×16 vs libtorch: ${r16.rel}`);
        const ort16 = (await sess.run(feedsOf(full))).denoised!.data as Float32Array;
        const official = relMax(ort16, t('out.D').data() as Float32Array);
        assert.ok(official < TOL, `16×16 vs the official D: ${official}`);
        const patch = (await sess.run(feedsOf({ x: t('in.patch_x'), sigma: t('in.sigma'), xPos: t('in.patch_x_pos'), labels }))).denoised!;
        const officialPatch = relMax(patch.data as Float32Array, t('out.patch_D').data() as Float32Array);
        assert.ok(officialPatch < TOL, `8×8 patches vs the official patch D: ${officialPatch}`);
        const n = t('in.x').shape[0]!;
        const g = new Generator(5);
        const big: Inputs = { x: g.randn([n, 3, 32, 32]), sigma: t('in.sigma'), xPos: coords(n, 32, 16), labels };
        const r32 = await compare(net, sess, big);
        assert.ok(r32.rel < TOL, `32×32 vs libtorch: ${r32.rel}`);
        figures.push(`  reference ${name}: 16×16 ${r16.rel.toExponential(1)} (official D ${official.toExponential(1)}), 32×32 ${r32.rel.toExponential(1)}, 8×8 patches vs official ${officialPatch.toExponential(1)}`);
        await sess.release();
      } finally {
        net.dispose();
        for (const v of tensors.values()) v.dispose();
      }
    });
  }
});

describe('what the exporter cannot express', () => {
  const tiny = () => {
    const net = createNetwork(presetConfig('ddpmpp', { imgResolution: 16, dropout: 0, overrides: { ...SMALL, model_channels: 16 } }), { generator: new Generator(1) });
    return net.eval();
  };

  test('a layer of an unknown kind fails with an error naming the layer (module path)', () => {
    const net = tiny();
    try {
      const block = net.model.children().find(([n]) => n === 'enc')![1].children().find(([n]) => n === '16x16_block0')![1];
      (block as unknown as { norm0: unknown }).norm0 = new Linear(16, 16, { initialize: false });
      assert.throws(
        () => exportDenoiser(net),
        (e: unknown) =>
          e instanceof OnnxExportError &&
          e.layer === 'model.enc.16x16_block0.norm0' &&
          /model\.enc\.16x16_block0\.norm0: is a Linear; the exporter expects a GroupNorm here/.test(e.message),
      );
    } finally {
      net.dispose();
    }
  });

  test('a UNet other than SongUNet or DhariwalUNet fails naming `model`', () => {
    const net = tiny();
    try {
      class OtherUNet {}
      Object.defineProperty(net, 'model', { value: new OtherUNet() });
      assert.throws(() => exportDenoiser(net), /ONNX export: model: is a OtherUNet; the exporter writes SongUNet \(DDPM\+\+, NCSN\+\+\) and DhariwalUNet \(ADM\) networks only/);
    } finally {
      net.dispose();
    }
  });
});

describe('the export CLI', () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const cli = (...args: string[]) => spawnSync(process.execPath, [main, 'export', ...args], { encoding: 'utf8', timeout: 120_000 });

  test('writes a file that onnxruntime-node loads, with the snapshot metadata; refuses to overwrite without --force', async () => {
    const g = new Generator(11);
    const config = presetConfig('ddpmpp-cpu', { imgResolution: 16, labelDim: 2 });
    const net = createNetwork(config, { generator: g });
    const run = join(tmp, 'run');
    mkdirSync(run, { recursive: true });
    try {
      perturb(net, g);
      net.eval();
      saveNetworkSnapshot(join(run, 'network-snapshot-000003.safetensors'), net, {
        network: config as unknown as Record<string, unknown>,
        dataset: { name: 'shapes', resolution: 16, channels: 3, labelDim: 2 },
        kimg: 3,
      });
      const out = join(tmp, 'model.onnx');
      const r = cli('--network', run, '--out', out);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /inputs: x \[N, 3, H, W\], sigma \[N\], x_pos \[N, 2, H, W\], class_labels \[N, 2\]; output: denoised \[N, 3, H, W\]/);
      assert.match(r.stdout, new RegExp(`wrote .*model\\.onnx \\([\\d.]+ MiB, ONNX opset ${ONNX_OPSET}\\)`));

      const bytes = readFileSync(out);
      const model = decodeModel(bytes);
      assert.equal(model.opsetImport[0]!.version, ONNX_OPSET);
      const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
      assert.equal(meta.format, 'patch-diffusion/onnx-denoiser@1');
      assert.equal(meta.resolution, '16');
      assert.equal(meta.image_channels, '3');
      assert.equal(meta.position_channels, '2');
      assert.equal(meta.label_dim, '2');
      assert.equal(meta.precond, 'edm');
      assert.equal(meta.sigma_min, '0');
      assert.equal(meta.sigma_max, 'Infinity');
      assert.equal(meta.size_multiple, '4');
      assert.equal(meta.kimg, '3');
      assert.deepEqual(JSON.parse(meta.inputs!), ['x', 'sigma', 'x_pos', 'class_labels']);
      assert.deepEqual(JSON.parse(meta.network!), config);
      assert.equal(meta.source, 'network-snapshot-000003.safetensors');

      // The CLI's file is exportModel of the loaded model: one way to open a snapshot.
      const loaded = DiffusionModel.load(run, { device: 'cpu' });
      try {
        assert.equal(loaded.path, join(run, 'network-snapshot-000003.safetensors'));
        assert.ok(Buffer.from(exportModel(loaded).bytes).equals(bytes), 'exportModel(DiffusionModel.load(run)) writes the CLI file');
      } finally {
        loaded.dispose();
      }

      const sess = await session(bytes);
      for (const size of [16, 32]) {
        const { rel } = await compare(net, sess, makeInputs(net, g, 2, size, [0.5, 3]));
        assert.ok(rel < TOL, `${size}×${size}: ${rel}`);
      }
      await sess.release();

      const again = cli('--network', run, '--out', out);
      assert.equal(again.status, 1);
      assert.match(again.stderr, /export: .*model\.onnx exists \(pass --force to overwrite\)/);
      assert.equal(cli('--network', run, '--out', out, '--force').status, 0);
      const bad = cli('--network', run, '--out', join(tmp, 'model.bin'));
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /--out .*model\.bin must end in \.onnx/);
      const missing = cli('--network', join(tmp, 'nowhere'), '--out', join(tmp, 'x.onnx'));
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /--network: .*nowhere does not exist/);
    } finally {
      net.dispose();
    }
  });

  const officialCases = [
    { file: 'vp_song_t213.pkl', what: /VPPrecond \(SongUNet\) at 8×8/, inputs: ['x', 'sigma'] },
    { file: 'pedm_adm_t213.pkl', what: /Patch_EDMPrecond \(DhariwalUNet\) at 8×8/, inputs: ['x', 'sigma', 'x_pos'] },
    { file: 'edm_song_cond_t213.pkl', what: /EDMPrecond \(SongUNet\) at 8×8/, inputs: ['x', 'sigma', 'class_labels'] },
  ];
  test('official snapshots (.pkl: VPPrecond; Patch_EDMPrecond ADM with augment_dim 9; conditional EDMPrecond) export and match libtorch', async () => {
    const { loadSnapshotNetwork } = await import('../src/model/load-network.js');
    for (const c of officialCases) {
      const pkl = fileURLToPath(new URL(`../../test/fixtures/interchange/${c.file}`, import.meta.url));
      const out = join(tmp, `${c.file}.onnx`);
      const r = cli('--network', pkl, '--out', out);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, c.what);
      const { net } = loadSnapshotNetwork(pkl, 'cpu');
      try {
        const sess = await session(readFileSync(out));
        assert.deepEqual(sess.inputNames, c.inputs);
        const g = new Generator(2);
        for (const size of [8, 16]) {
          const { rel } = await compare(net, sess, makeInputs(net, g, 2, size, [0.05, 30]));
          assert.ok(rel < TOL, `${c.file} ${size}×${size}: ${rel}`);
        }
        await sess.release();
      } finally {
        net.dispose();
      }
    }
  });
});

describe('Python onnxruntime runs the exported model', () => {
  const script = fileURLToPath(new URL('../../test/fixtures/onnx/check_onnx.py', import.meta.url));
  const python = [process.env.PD_PYTHON, fileURLToPath(new URL('../../.venv/bin/python', import.meta.url)), '/usr/bin/python3'].find(
    (p): p is string => !!p && existsSync(p) && spawnSync(p, ['-c', 'import onnxruntime, numpy'], { stdio: 'ignore' }).status === 0,
  );

  test('D from Python onnxruntime equals libtorch within 1e-4 (2× canvas, NCSN++ with labels), and onnx.checker accepts the file', { skip: python ? false : 'no Python with onnxruntime (scripts/setup.sh installs it into .venv when pip can)' }, () => {
    const g = new Generator(21);
    const net = createNetwork(presetConfig('ncsnpp', { imgResolution: 16, labelDim: 3, dropout: 0, overrides: SMALL }), { generator: g });
    const dir = join(tmp, 'py');
    mkdirSync(dir, { recursive: true });
    try {
      perturb(net, g);
      net.eval();
      writeFileSync(join(dir, 'model.onnx'), exportDenoiser(net).bytes);
      const inp = makeInputs(net, g, 2, 32, [0.3, 8]);
      const D = noGrad(() => net.forward(inp.x, inp.sigma, inp.xPos, inp.labels));
      const spec = (name: string, t: Tensor) => {
        writeFileSync(join(dir, `${name}.bin`), t.data() as Float32Array);
        return { file: `${name}.bin`, dims: [...t.shape] };
      };
      const manifest = {
        model: 'model.onnx',
        inputs: { x: spec('x', inp.x), sigma: spec('sigma', inp.sigma), x_pos: spec('x_pos', inp.xPos!), class_labels: spec('class_labels', inp.labels!) },
        expected: spec('D', D),
      };
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
      const r = spawnSync(python!, [script, join(dir, 'manifest.json')], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr + r.stdout);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { rel: number; onnxruntime: string; onnx?: string; checker: string; shape: number[]; inputs: string[]; metadata: Record<string, string> };
      assert.deepEqual(res.shape, [2, 3, 32, 32]);
      assert.deepEqual(res.inputs, ['x', 'sigma', 'x_pos', 'class_labels']);
      assert.equal(res.metadata.resolution, '16');
      assert.ok(res.rel < TOL, `Python onnxruntime ${res.onnxruntime}: ${res.rel}`);
      if (res.onnx) assert.equal(res.checker, 'ok');
      figures.push(`  Python onnxruntime ${res.onnxruntime} (NCSN++, labels, 32×32): ${res.rel.toExponential(1)}; onnx.checker: ${res.checker}${res.onnx ? ` (onnx ${res.onnx})` : ''}`);
    } finally {
      net.dispose();
    }
  });
});
