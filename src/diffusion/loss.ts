// The training losses. Patch Diffusion's (Patch_EDMLoss, official patch_loss.py):
// crop each image at its own offset, noise the crop at a log-normal σ,
// denoise it with the coordinates as extra input, and weight the squared
// error by λ(σ). EDM's whole-image losses (loss.py's EDMLoss, VPLoss, VELoss)
// are the same with no crop and no coordinates, and their own σ draw and
// weight: VP draws t uniformly in [ε_t, 1] and takes σ(t) of its schedule,
// VE draws ln σ uniformly in [ln σ_min, ln σ_max]; both weight by 1/σ².
import type { Generator } from '../tensor/random.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { full } from '../tensor/creation.js';
import { lossWeightTensor, P_MEAN, P_STD, SIGMA_DATA, sigmaFromNormal } from './edm.js';
import { pachify } from './patches.js';

/** How a loss draws the training σ and weights its error (the official loss classes' constructor arguments). */
export type NoiseLevels =
  | { kind: 'edm'; pMean?: number; pStd?: number; sigmaData?: number }
  | { kind: 'vp'; betaD?: number; betaMin?: number; epsilonT?: number }
  | { kind: 've'; sigmaMin?: number; sigmaMax?: number };

/** The loss classes' defaults (loss.py): VPLoss(19.9, 0.1, 1e-5), VELoss(0.02, 100). */
export const VP_LOSS_DEFAULTS = { betaD: 19.9, betaMin: 0.1, epsilonT: 1e-5 } as const;
/** VELoss's defaults (loss.py): σ_min 0.02, σ_max 100. */
export const VE_LOSS_DEFAULTS = { sigmaMin: 0.02, sigmaMax: 100 } as const;

/** The draw behind σ: standard normal [n,1,1,1] for EDM, uniform in [0, 1) for VP and VE. */
export function drawNoiseLevel(levels: NoiseLevels, n: number, generator: Generator, device?: Device): Tensor {
  return levels.kind === 'edm' ? generator.randn([n, 1, 1, 1], { device }) : generator.rand([n, 1, 1, 1], { device });
}

/** σ and the loss weight from the draw, with the official op order (float32). */
export function noiseLevelAndWeight(levels: NoiseLevels, rnd: Tensor): { sigma: Tensor; weight: Tensor } {
  switch (levels.kind) {
    case 'edm': {
      const sigma = sigmaFromNormal(rnd, levels.pMean ?? P_MEAN, levels.pStd ?? P_STD);
      return { sigma, weight: lossWeightTensor(sigma, levels.sigmaData ?? SIGMA_DATA) };
    }
    case 'vp': {
      const { betaD, betaMin, epsilonT } = { ...VP_LOSS_DEFAULTS, ...definedOnly(levels) };
      const t = rnd.mul(epsilonT - 1).add(1);
      const sigma = t.square().mul(0.5 * betaD).add(t.mul(betaMin)).exp().sub(1).sqrt();
      return { sigma, weight: sigma.square().reciprocal() };
    }
    case 've': {
      const { sigmaMin, sigmaMax } = { ...VE_LOSS_DEFAULTS, ...definedOnly(levels) };
      const sigma = full(rnd.shape, sigmaMax / sigmaMin, { device: rnd.device }).pow(rnd).mul(sigmaMin);
      return { sigma, weight: sigma.square().reciprocal() };
    }
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => k !== 'kind' && v !== undefined)) as Partial<T>;
}

/**
 * The preconditioned denoiser D(x; σ) as this module sees it. `sigma` is [N],
 * [N,1,1,1] or 0-dim (broadcast over the batch); `xPos` holds the two
 * coordinate channels [N, 2, H, W], or null for a network without them; the
 * result has x's shape (image channels).
 */
export type Denoiser = (x: Tensor, sigma: Tensor, xPos: Tensor | null, classLabels?: Tensor | null, augmentLabels?: Tensor | null) => Tensor;

/** An augmentation applied to the crops (their coordinates are left as they are, like the official code). */
export type AugmentFn = (patches: Tensor) => { images: Tensor; labels: Tensor | null };

/**
 * `patchLoss`'s inputs: the network, the images, the patch size, and the draws (from a generator, or
 * injected).
 */
export interface PatchLossOptions {
  /** The preconditioned denoiser D(x; σ, pos) being trained. */
  net: Denoiser;
  /** Training images in [−1, 1], [N, C, R, R] (latents in latent mode). */
  images: Tensor;
  /** The crop side; null: EDM's whole-image losses, no crop and no coordinate channels. */
  patchSize: number | null;
  /** Conditioning labels [N, label_dim], or null for an unconditional model. */
  labels?: Tensor | null;
  /**
   * Source of every random draw, in the official order: row offsets, column
   * offsets (patches only), the σ draw [N,1,1,1], the augmentation's draws,
   * then the unit noise. Each draw can
   * instead be injected below (parity tests); the generator is needed only
   * for what is not injected.
   */
  generator?: Generator;
  rowOffsets?: Tensor | readonly number[];
  colOffsets?: Tensor | readonly number[];
  /** The draw behind σ, [N, 1, 1, 1]: standard normal (EDM) or uniform (VP, VE). */
  rndNormal?: Tensor;
  /** Unit noise ε with the crops' shape [N, C, s, s]; the added noise is σ·ε. */
  noise?: Tensor;
  augment?: AugmentFn | null;
  /** σ distribution and weight; default EDM's with the P_mean, P_std, σ_data below. */
  noiseLevels?: NoiseLevels;
  pMean?: number;
  pStd?: number;
  sigmaData?: number;
}

/** `patchLoss`'s result: the elementwise loss and what it was computed from. */
export interface PatchLossResult {
  /** Elementwise λ(σ)·(D − y)², [N, C, s, s]. Reduce with reducePatchLoss. */
  loss: Tensor;
  /** The clean crops y (after augmentation, if any). */
  patches: Tensor;
  /** Their coordinate channels [N, 2, s, s] (null for a whole-image loss). */
  xPos: Tensor | null;
  /** Per-sample σ, [N, 1, 1, 1]. */
  sigma: Tensor;
  rowOffsets: number[];
  colOffsets: number[];
}

/** The patch loss for one micro-batch (all images share `patchSize`, each has its own crop), or a whole-image loss. */
export function patchLoss(o: PatchLossOptions): PatchLossResult {
  const { images, patchSize } = o;
  const n = images.shape[0]!;
  const device = images.device;
  const levels: NoiseLevels = o.noiseLevels ?? { kind: 'edm', pMean: o.pMean, pStd: o.pStd, sigmaData: o.sigmaData };

  const crop =
    patchSize === null
      ? { patches: images, xPos: null, rowOffsets: [] as number[], colOffsets: [] as number[] }
      : pachify(images, patchSize, { generator: o.generator, rowOffsets: o.rowOffsets, colOffsets: o.colOffsets });

  const rnd = o.rndNormal ?? drawNoiseLevel(levels, n, need(o.generator, 'rndNormal'), device);
  checkShape(rnd, [n, 1, 1, 1], 'rndNormal');
  const { sigma, weight } = noiseLevelAndWeight(levels, rnd.to(device));

  // Augmentation acts on the crops only; a flipped crop keeps its coordinates (as officially).
  let y = crop.patches;
  let augmentLabels: Tensor | null = null;
  if (o.augment) {
    const a = o.augment(crop.patches);
    y = a.images;
    augmentLabels = a.labels;
  }

  const eps = o.noise ?? need(o.generator, 'noise').randn(y.shape, { dtype: y.dtype, device });
  checkShape(eps, y.shape, 'noise');
  const yn = y.add(eps.to(device).mul(sigma));
  // The coordinates go in raw (never noised): the precond scales only the image channels by c_in.
  const denoised = o.net(yn, sigma, crop.xPos, o.labels ?? null, augmentLabels);
  const loss = weight.mul(denoised.sub(y).square());
  return { loss, patches: y, xPos: crop.xPos, sigma, rowOffsets: crop.rowOffsets, colOffsets: crop.colOffsets };
}

/**
 * The official reduction (training_loop.py): sum over every element of the
 * round's loss, times loss_scaling, divided by batch_gpu_total·batch_mul.
 * That is the per-sample sum over C·s·s, averaged over the samples of a full
 * step, so a 16×16 round at R = 64 weighs about 1/16 of a full-size round.
 * Not the per-pixel mean (that reweights patch sizes). Returns a scalar ready for backward().
 */
export function reducePatchLoss(loss: Tensor, batchGpuTotal: number, batchMul: number, lossScaling = 1): Tensor {
  if (!(batchGpuTotal > 0) || !(batchMul > 0)) throw new Error(`reducePatchLoss: batchGpuTotal (${batchGpuTotal}) and batchMul (${batchMul}) must be positive`);
  return loss.sum().mul(lossScaling / batchGpuTotal / batchMul);
}

function need(generator: Generator | undefined, what: string): Generator {
  if (!generator) throw new Error(`patchLoss: no generator given and no ${what} injected`);
  return generator;
}

function checkShape(t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, k) => d !== shape[k]))
    throw new Error(`patchLoss: ${what} has shape [${t.shape}], expected [${shape}]`);
}
