// The official train.py / generate.py options against the official code
// (test/fixtures/official-options/refs.safetensors, made by make_refs.py
// there, which imports Patch Diffusion's and EDM's modules): EDM's augment
// pipe (images and labels for a seed), the VP / VE / EDM preconditioners and
// losses, and generate.py's ablation sampler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ablationSchedule, type Discretization, type Scaling, type Schedule, type Solver } from '../src/diffusion/ablation-sampler.js';
import { AugmentPipe, type AugmentOptions } from '../src/diffusion/augment.js';
import { patchLoss } from '../src/diffusion/loss.js';
import { generateImages } from '../src/diffusion/sampler.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { createNetwork } from '../src/networks/config.js';
import { loadOfficialNetwork } from '../src/networks/official-snapshot.js';
import { PRECOND_KINDS, type PrecondKind, type Preconditioner } from '../src/networks/precond.js';
import { Generator, noGrad, scope, type Tensor } from '../src/tensor/index.js';

const REFS = fileURLToPath(new URL('../../test/fixtures/official-options/refs.safetensors', import.meta.url));
const { tensors, metadata } = readSafetensors(REFS);
const cases = JSON.parse(metadata!.cases!) as Record<string, Record<string, unknown>>;
const get = (name: string): Tensor => {
  const t = tensors.get(name);
  if (!t) throw new Error(`${REFS} has no tensor '${name}'`);
  return t;
};
const maxAbs = (a: Tensor, b: Tensor) => scope(() => a.to('float64').sub(b.to('float64')).abs().amax().item());
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const augmentOptions = (kwargs: Record<string, number>): Partial<AugmentOptions> =>
  Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [camel(k), v]));

for (const name of ['trainpy', 'trainpy_p05', 'all', 'grey']) {
  test(`augment pipe '${name}': the official images and labels for the same seed`, () => {
    const c = cases[`augment.${name}`]!;
    const pipe = new AugmentPipe(augmentOptions(c.kwargs as Record<string, number>));
    const r = pipe.apply(get(`augment.${name}.in`), new Generator(c.seed as number));
    const labels = get(`augment.${name}.labels`);
    assert.deepEqual(r.labels.shape, labels.shape);
    assert.equal(pipe.labelDim, labels.shape[1]);
    const dl = maxAbs(r.labels, labels);
    const di = maxAbs(r.images, get(`augment.${name}.out`));
    assert.ok(dl < 1e-5, `labels differ by ${dl}`);
    assert.ok(di < 1e-4, `images differ by ${di}`);
  });
}

// ---- preconditioners and losses --------------------------------------------------------------

/** The tiny SongUNet of the fixture under the given preconditioner, with its weights (param.<set>.*). */
function fixtureNetwork(kind: PrecondKind, weights: 'song' | 'pedm'): Preconditioner {
  const unet = cases['precond.vp']!.unet as Record<string, unknown>;
  const config = { ...unet, precond: kind, img_resolution: 8, img_channels: weights === 'pedm' ? 5 : 3, out_channels: 3 } as Record<string, unknown>;
  if (weights === 'pedm') delete config.augment_dim;
  const net = createNetwork(config as never, { initialize: false });
  const state = new Map<string, Tensor>();
  for (const [name, t] of tensors) if (name.startsWith(`param.${weights}.`)) state.set(`model.${name.slice(`param.${weights}.`.length)}`, t);
  net.loadStateDict(state);
  return net.eval();
}

const relErr = (a: Tensor, b: Tensor) => maxAbs(a, b) / Math.max(scope(() => b.abs().amax().item()), 1e-30);

for (const kind of PRECOND_KINDS) {
  test(`${kind} preconditioner: D equals the official ${kind.toUpperCase()}Precond, and so do its σ range and class name`, () => {
    const c = cases[`precond.${kind}`]!;
    const net = fixtureNetwork(kind, 'song');
    assert.equal(net.className, c.class_name);
    assert.ok(Math.abs(net.sigmaMin - (c.sigma_min as number)) <= 1e-12 * (c.sigma_min as number) || net.sigmaMin === c.sigma_min, `sigma_min ${net.sigmaMin} vs ${String(c.sigma_min)}`);
    assert.equal(net.sigmaMax, c.sigma_max === null ? Infinity : c.sigma_max);
    const d = noGrad(() => net.forward(get(`precond.${kind}.x`), get(`precond.${kind}.sigma`), null, null, get(`precond.${kind}.aug`)));
    const err = relErr(d, get(`precond.${kind}.out`));
    assert.ok(err < 1e-5, `D differs by ${err} (relative to max |D|)`);
  });

  test(`${kind} loss with train.py's augment pipe: the official ${String(cases[`loss.${kind}`]!.class_name)} for the same seed`, () => {
    const c = cases[`loss.${kind}`]!;
    const net = fixtureNetwork(kind, 'song');
    const gen = new Generator(c.seed as number);
    const pipe = new AugmentPipe(augmentOptions(c.augment as Record<string, number>));
    const r = noGrad(() =>
      patchLoss({
        net: (x, s, pos, labels, aug) => net.forward(x, s, pos, labels ?? null, aug ?? null),
        images: get(`loss.${kind}.images`),
        patchSize: null,
        generator: gen,
        noiseLevels: { kind },
        augment: (y) => pipe.apply(y, gen),
      }),
    );
    assert.equal(r.xPos, null);
    const err = relErr(r.loss, get(`loss.${kind}.loss`));
    assert.ok(err < 1e-4, `loss differs by ${err} (relative to its max)`);
  });
}

test('an official VPPrecond snapshot loads, and its D equals the official one', () => {
  const o = loadOfficialNetwork(fileURLToPath(new URL('../../test/fixtures/interchange/vp_song_t213.pkl', import.meta.url)));
  assert.equal(o.className, 'VPPrecond');
  assert.equal(o.config.precond, 'vp');
  const net = createNetwork(o.config, { initialize: false });
  net.loadStateDict(o.weights);
  net.eval();
  assert.equal(net.className, 'VPPrecond');
  const d = noGrad(() => net.forward(get('vp_snapshot.x'), get('vp_snapshot.sigma'), null));
  const err = relErr(d, get('vp_snapshot.out'));
  assert.ok(err < 1e-5, `D differs by ${err}`);
});

// ---- the ablation sampler ----------------------------------------------------------------------

for (const name of ['vp', 've', 'iddpm', 'heun_edm', 'heun_vp_churn', 'heun_edm_ve_custom', 'pedm_heun_vp']) {
  test(`ablation sampler '${name}': EDM generate.py's ablation_sampler output for seeds 0 and 1`, () => {
    const c = cases[`sampler.${name}`]!;
    const net = c.net === 'pedm' ? fixtureNetwork('edm', 'pedm') : fixtureNetwork('vp', 'song');
    const { images } = generateImages((x, s, pos, labels) => net.forward(x, s, net.positionChannels ? pos : null, labels ?? null), {
      seeds: [0, 1], channels: 3, resolution: 8,
      numSteps: c.num_steps as number, sigmaMin: c.sigma_min as number | undefined, sigmaMax: c.sigma_max as number | undefined, rho: c.rho as number | undefined,
      sChurn: c.S_churn as number | undefined, sMin: c.S_min as number | undefined, sMax: c.S_max as number | undefined, sNoise: c.S_noise as number | undefined,
      netSigmaMin: net.sigmaMin, netSigmaMax: net.sigmaMax,
      ablation: { solver: c.solver as Solver, discretization: c.discretization as Discretization, schedule: c.schedule as Schedule, scaling: c.scaling as Scaling },
    });
    const err = relErr(images, get(`sampler.${name}.out`));
    // Float32 rounding of D is amplified by the ODE's coefficients; the VE schedule with VP
    // scaling over 4 coarse steps amplifies most (5.1e-5 measured on an Intel Xeon, the others ≤ 3.4e-6).
    const bound = name === 'heun_edm_ve_custom' ? 5e-4 : 1e-4;
    assert.ok(err < bound, `images differ by ${err} (relative to max |x|)`);
  });
}

test('ablation sampler: heun / edm / linear / none is EDM\'s Heun sampler', () => {
  const net = fixtureNetwork('vp', 'song');
  const denoiser = (x: Tensor, s: Tensor, _pos: Tensor | null) => net.forward(x, s, null);
  const common = { seeds: [3, 4], channels: 3, resolution: 8, numSteps: 6, netSigmaMin: net.sigmaMin, netSigmaMax: net.sigmaMax };
  const a = generateImages(denoiser, { ...common, ablation: { solver: 'heun', discretization: 'edm', schedule: 'linear', scaling: 'none' } }).images;
  const b = generateImages(denoiser, common).images;
  assert.ok(maxAbs(a, b) < 1e-12, `differs by ${maxAbs(a, b)}`);
});

test('ablation sampler: unknown choices are refused by name', () => {
  assert.throws(() => ablationSchedule({ solver: 'rk4' as never }), /solver must be one of euler, heun, got "rk4"/);
  assert.throws(() => ablationSchedule({ discretization: 'cosine' as never }), /discretization must be one of vp, ve, iddpm, edm/);
  assert.throws(() => ablationSchedule({ sigmaMin: 5, sigmaMax: 1 }), /sigma_min ≤ sigma_max/);
});
