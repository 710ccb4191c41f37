// Parity of the patch loss and the EDM sampler with the official PyTorch code,
// through the real network (reference vectors in ../shared/reference). These
// need src/networks; until it exists the tests skip.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { noGrad, type Tensor } from '../src/tensor/index.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { patchLoss, type Denoiser } from '../src/diffusion/loss.js';
import { edmSample } from '../src/diffusion/sampler.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { TEST_DEVICE, onDevice } from './helpers/device.js';

const REF = REFERENCE_DIR + '/';

interface NetLike {
  forward(x: Tensor, sigma: Tensor, xPos: Tensor | null, classLabels?: Tensor | null): Tensor;
  loadStateDict(state: Map<string, Tensor>, options?: { strict?: boolean }): void;
  eval(): unknown;
}
interface NetworksModule {
  createNetwork(config: never, options: { initialize?: boolean; generator?: unknown }): NetLike;
  parseNetworkConfig?: (raw: unknown) => unknown;
}

/** The reference net_ddpmpp network as a Denoiser, or a reason to skip. */
async function referenceDenoiser(t: TestContext, caseName = 'net_ddpmpp'): Promise<Denoiser | null> {
  if (!existsSync(`${REF}/${caseName}.safetensors`)) {
    t.skip(`no reference vectors at ${REF}`);
    return null;
  }
  let mod: NetworksModule;
  try {
    mod = (await import('../src/networks/config.js' as string)) as NetworksModule;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      t.skip('src/networks/config.ts does not exist yet');
      return null;
    }
    throw e;
  }
  const cases = JSON.parse(readFileSync(`${REF}/cases.json`, 'utf8')) as Record<string, { config: unknown }>;
  const raw = cases[caseName]!.config;
  const config = mod.parseNetworkConfig ? mod.parseNetworkConfig(raw) : raw;
  const net = mod.createNetwork(config as never, { initialize: false });
  const { tensors } = readSafetensors(`${REF}/${caseName}.safetensors`);
  const state = new Map<string, Tensor>();
  for (const [name, value] of tensors) if (name.startsWith('param.')) state.set(name.slice('param.'.length), value);
  net.loadStateDict(state);
  (net as NetLike & { to(target: { device: string }): unknown }).to({ device: TEST_DEVICE });
  net.eval();
  return (x, sigma, xPos, labels) => net.forward(x, sigma, xPos, labels ?? null);
}

function relErr(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return a.to('float64').sub(b.to('float64')).norm().item() / b.to('float64').norm().item();
}

test('patch loss matches out.loss of the official Patch_EDMLoss (1e-4 relative)', async (t) => {
  const net = await referenceDenoiser(t);
  if (!net) return;
  const { tensors: r, metadata } = readSafetensors(`${REF}/patch_loss.safetensors`);
  const get = (k: string): Tensor => onDevice(r.get(k) ?? assert.fail(`missing ${k}`));
  const out = noGrad(() =>
    patchLoss({
      net, images: get('in.images'), patchSize: Number(metadata.patch_size ?? 8),
      rowOffsets: get('in.row_offsets'), colOffsets: get('in.col_offsets'), rndNormal: get('in.rnd_normal'), noise: get('in.noise'),
    }),
  );
  assert.deepEqual(out.patches.toArray(), get('out.patches').toArray());
  assert.deepEqual(out.xPos!.toArray(), get('out.x_pos').toArray());
  const err = relErr(out.loss, get('out.loss'));
  t.diagnostic(`loss relative error ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `loss relative error ${err}`);
});

test('EDM sampler matches out.deterministic and out.stochastic (1e-4 relative)', async (t) => {
  const net = await referenceDenoiser(t);
  if (!net) return;
  const { tensors: r, metadata } = readSafetensors(`${REF}/sampler.safetensors`);
  const get = (k: string): Tensor => onDevice(r.get(k) ?? assert.fail(`missing ${k}`));
  const numSteps = Number(metadata.num_steps ?? 6);
  const base = { numSteps, sigmaMin: Number(metadata.sigma_min ?? 0.002), sigmaMax: Number(metadata.sigma_max ?? 80), rho: Number(metadata.rho ?? 7) };
  const latents = get('in.latents');
  const xPos = get('in.x_pos');

  let nfe = 0;
  const counting: Denoiser = (x, s, p, l) => (nfe++, net(x, s, p, l));
  const det = edmSample(counting, latents, xPos, base);
  assert.equal(nfe, 2 * numSteps - 1);
  assert.equal(det.dtype, 'float64');
  const errDet = relErr(det, get('out.deterministic'));
  assert.ok(errDet < 1e-4, `deterministic relative error ${errDet}`);

  const stoch = JSON.parse(metadata.stochastic ?? '{"S_churn":40,"S_min":0.05,"S_max":50,"S_noise":1.003}') as Record<string, number>;
  const churn = Array.from({ length: numSteps }, (_, k) => get(`in.churn_noise.${k}`));
  const sto = edmSample(net, latents, xPos, { ...base, sChurn: stoch.S_churn, sMin: stoch.S_min, sMax: stoch.S_max, sNoise: stoch.S_noise, churnNoise: churn });
  const errSto = relErr(sto, get('out.stochastic'));
  t.diagnostic(`sampler relative error: deterministic ${errDet.toExponential(2)}, stochastic ${errSto.toExponential(2)}`);
  assert.ok(errSto < 1e-4, `stochastic relative error ${errSto}`);
  // The churn makes a real difference, so the stochastic check is not the deterministic one again.
  assert.ok(relErr(sto, det) > 1e-3);
});
