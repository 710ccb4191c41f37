// The Patch Diffusion training loss (official Patch_EDMLoss, spec §4): crop
// each image at its own offset, noise the crop at a log-normal σ, denoise it
// with the coordinates as extra input, and weight the squared error by λ(σ).
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { lossWeightTensor, P_MEAN, P_STD, SIGMA_DATA, sigmaFromNormal } from './edm.js';
import { pachify } from './patches.js';

/**
 * The preconditioned denoiser D(x; σ) as this module sees it. `sigma` is [N],
 * [N,1,1,1] or 0-dim (broadcast over the batch); `xPos` holds the two
 * coordinate channels [N, 2, H, W]; the result has x's shape (image channels).
 */
export type Denoiser = (x: Tensor, sigma: Tensor, xPos: Tensor, classLabels?: Tensor | null, augmentLabels?: Tensor | null) => Tensor;

/** An augmentation applied to the crops (their coordinates are left as they are, like the official code). */
export type AugmentFn = (patches: Tensor) => { images: Tensor; labels: Tensor | null };

export interface PatchLossOptions {
  net: Denoiser;
  /** Training images in [−1, 1], [N, C, R, R] (latents in latent mode). */
  images: Tensor;
  patchSize: number;
  /** Conditioning labels [N, label_dim], or null for an unconditional model. */
  labels?: Tensor | null;
  /**
   * Source of every random draw, in the official order: row offsets, column
   * offsets, the σ normal draw [N,1,1,1], then the unit noise. Each draw can
   * instead be injected below (parity tests); the generator is needed only
   * for what is not injected.
   */
  generator?: Generator;
  rowOffsets?: Tensor | readonly number[];
  colOffsets?: Tensor | readonly number[];
  /** The standard-normal draw behind σ, [N, 1, 1, 1]. */
  rndNormal?: Tensor;
  /** Unit noise ε with the crops' shape [N, C, s, s]; the added noise is σ·ε. */
  noise?: Tensor;
  augment?: AugmentFn | null;
  pMean?: number;
  pStd?: number;
  sigmaData?: number;
}

export interface PatchLossResult {
  /** Elementwise λ(σ)·(D − y)², [N, C, s, s]. Reduce with reducePatchLoss. */
  loss: Tensor;
  /** The clean crops y (after augmentation, if any). */
  patches: Tensor;
  /** Their coordinate channels [N, 2, s, s]. */
  xPos: Tensor;
  /** Per-sample σ, [N, 1, 1, 1]. */
  sigma: Tensor;
  rowOffsets: number[];
  colOffsets: number[];
}

/** The patch loss for one micro-batch (all images share `patchSize`, each has its own crop). */
export function patchLoss(o: PatchLossOptions): PatchLossResult {
  const { images, patchSize } = o;
  const n = images.shape[0]!;
  const device = images.device as never;
  const sigmaData = o.sigmaData ?? SIGMA_DATA;

  const crop = pachify(images, patchSize, { generator: o.generator, rowOffsets: o.rowOffsets, colOffsets: o.colOffsets });

  const rnd = o.rndNormal ?? need(o.generator, 'rndNormal').randn([n, 1, 1, 1], { device });
  checkShape(rnd, [n, 1, 1, 1], 'rndNormal');
  const sigma = sigmaFromNormal(rnd.to(images.device as never), o.pMean ?? P_MEAN, o.pStd ?? P_STD);
  const weight = lossWeightTensor(sigma, sigmaData);

  // Augmentation acts on the crops only; the coordinates stay those of the crop (spec §6.4).
  let y = crop.patches;
  let augmentLabels: Tensor | null = null;
  if (o.augment) {
    const a = o.augment(crop.patches);
    y = a.images;
    augmentLabels = a.labels;
  }

  const eps = o.noise ?? need(o.generator, 'noise').randn(y.shape, { dtype: y.dtype, device });
  checkShape(eps, y.shape, 'noise');
  const yn = y.add(eps.to(images.device as never).mul(sigma));
  // The coordinates go in raw: the precond scales only the image channels by c_in (spec §3.1).
  const denoised = o.net(yn, sigma, crop.xPos, o.labels ?? null, augmentLabels);
  const loss = weight.mul(denoised.sub(y).square());
  return { loss, patches: y, xPos: crop.xPos, sigma, rowOffsets: crop.rowOffsets, colOffsets: crop.colOffsets };
}

/**
 * The official reduction (training_loop.py): sum over every element of the
 * round's loss, times loss_scaling, divided by batch_gpu_total·batch_mul.
 * That is the per-sample sum over C·s·s, averaged over the samples of a full
 * step, so a 16×16 round at R = 64 weighs about 1/16 of a full-size round.
 * Not the per-pixel mean (spec §14 trap 5). Returns a scalar ready for backward().
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
