// Assembles what the training loop works with, from validated options and a
// dataset: network and EMA copy, optimizer, generators, patch schedule, batch
// source, the patch loss and the sample-grid maker. All checks that can fail
// run here, before the first step.
import { Adam } from '../optim/adam.js';
import { Generator, scope, tensor, zerosLike, type Device, type Tensor } from '../tensor/index.js';
import { BatchLoader, type ImageDataset, type SamplerState } from '../data/index.js';
import { createNetwork, presetConfig, type NetworkConfig, type PresetName } from '../networks/config.js';
import type { Preconditioner } from '../networks/precond.js';
import { PatchSchedule } from '../diffusion/patches.js';
import { patchLoss, type AugmentFn, type Denoiser, type NoiseLevels } from '../diffusion/loss.js';
import { AugmentPipe, trainPyAugmentOptions } from '../diffusion/augment.js';
import type { AutoencoderKL } from '../networks/autoencoder-kl.js';
import { encodeToLatents, latentInfo, type LatentInfo, type PreEncodedLatents } from '../latents/codec.js';
import { DiffusionModel } from '../model/diffusion-model.js';
import type { ResolvedTrainOptions } from './options.js';

export interface TrainingComponents {
  device: Device;
  /** This process's rank and the number of processes training together (1: a single process). */
  rank: number;
  worldSize: number;
  networkConfig: Record<string, unknown>;
  labelDim: number;
  /** Latent training: what the snapshots record about the latent space (null in pixel space). */
  latent: LatentInfo | null;
  net: Preconditioner;
  ema: Preconditioner;
  netParams: Tensor[];
  emaParams: Tensor[];
  adam: Adam;
  /** Every generator whose state a resume must restore, by name. */
  generators: Record<string, Generator>;
  patches: PatchSchedule;
  /** The training images, batch by batch, in the shuffled order a resume continues (the data position). */
  batches: {
    nextBatch(n: number): { images: Tensor; labels: Tensor | null };
    getState(): unknown;
    setState(state: unknown): void;
  };
  /** Elementwise patch loss [N, C, s, s] for uint8-derived images in [−1, 1]. */
  lossFn(images: Tensor, labels: Tensor | null, patchSize: number): Tensor;
  /** The EMA network as a model that samples (snapshot grids, the metrics' samples). */
  model: DiffusionModel;
}

const PRESET_OF_ARCH: Record<ResolvedTrainOptions['arch'], PresetName> = {
  ddpmpp: 'ddpmpp',
  ncsnpp: 'ncsnpp',
  adm: 'adm',
  small: 'ddpmpp-cpu',
};

/** What latent training adds: the frozen VAE, and the dataset's posteriors when pre-encoded. */
export interface LatentSource {
  vae: AutoencoderKL;
  preEncoded: PreEncodedLatents | null;
}

export function networkConfigFor(o: ResolvedTrainOptions, dataset: ImageDataset, latent: LatentSource | null = null): NetworkConfig {
  const overrides: Partial<NetworkConfig> = {};
  if (o.cbase !== undefined) overrides.model_channels = o.cbase;
  if (o.cres !== undefined) overrides.channel_mult = o.cres;
  if (o.numBlocks !== undefined) overrides.num_blocks = o.numBlocks;
  if (o.attn !== undefined) overrides.attn_resolutions = o.attn;
  if (o.labelDropout > 0) overrides.label_dropout = o.labelDropout;
  if (o.implicitMlp) overrides.implicit_mlp = true;
  return presetConfig(PRESET_OF_ARCH[o.arch], {
    // In latent space the network sees latents: the VAE's resolution and channels.
    imgResolution: latent ? dataset.resolution / latent.vae.downsampleFactor : dataset.resolution,
    imageChannels: latent ? latent.vae.config.latentChannels : dataset.channels,
    labelDim: o.cond ? dataset.labelDim : 0,
    dropout: o.dropout,
    precond: o.precond === 'pedm' ? 'edm' : o.precond,
    coordinates: o.precond === 'pedm',
    augmentDim: o.augment > 0 ? augmentPipeFor(o.augment).labelDim : 0,
    overrides,
  });
}

/** train.py's augmentation for --augment P (EDM's AugmentPipe, geometric transforms only). */
export function augmentPipeFor(p: number): AugmentPipe {
  return new AugmentPipe(trainPyAugmentOptions(p));
}

/** The loss's σ distribution and weight for a --precond (the official loss classes' defaults). */
export function noiseLevelsFor(precond: ResolvedTrainOptions['precond']): NoiseLevels {
  return { kind: precond === 'pedm' ? 'edm' : precond };
}

/**
 * The seed of a rank's own random streams, as the official training_loop.py
 * seeds each rank: (seed · world + rank) mod 2^31. One process keeps `seed`.
 */
export function rankSeed(seed: number, rank: number, worldSize: number): number {
  return worldSize > 1 ? (seed * worldSize + rank) % 2 ** 31 : seed;
}

/** The generator of --same-patch-size's shared draw: the same state on every rank. */
export const SHARED_PATCH_GENERATOR = 'patch';

export interface Placement {
  rank: number;
  worldSize: number;
}

/** What the data must offer the options, checked before anything is built (a dry run checks it too). */
export function checkDataFits(o: ResolvedTrainOptions, dataset: ImageDataset): void {
  if (o.cond && dataset.labelDim === 0) throw new Error(`--cond needs labels, but dataset '${dataset.name}' has none (add a dataset.json)`);
}

export function buildComponents(
  o: ResolvedTrainOptions,
  dataset: ImageDataset,
  device: Device,
  place: Placement = { rank: 0, worldSize: 1 },
  latent: LatentSource | null = null,
): TrainingComponents {
  checkDataFits(o, dataset);
  if (o.latents && !latent) throw new Error('buildComponents: --latents needs the VAE (a LatentSource)');
  const config = networkConfigFor(o, dataset, latent);
  const labelDim = config.label_dim ?? 0;
  const streams = trainingStreams(o, place);
  const { net, ema } = createNetworks(config, o, device, streams);
  const patches = new PatchSchedule({
    resolution: config.img_resolution,
    mode: latent ? 'latent' : 'pixel',
    realP: o.realP,
    progressive: o.progressive,
    minPatchMultiple: net.sizeMultiple,
    generator: streams.patch ?? streams.train,
  });
  return {
    device,
    rank: place.rank,
    worldSize: place.worldSize,
    networkConfig: config as unknown as Record<string, unknown>,
    labelDim,
    latent: latent ? latentInfo(latent.vae, o.vae!) : null,
    net,
    ema,
    netParams: net.parameters(),
    emaParams: ema.parameters(),
    adam: new Adam(net.parameters(), { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }),
    generators: { dropout: streams.dropout, train: streams.train, ...(streams.patch ? { [SHARED_PATCH_GENERATOR]: streams.patch } : {}) },
    patches,
    batches: batchSource(o, dataset, device, place, labelDim, latent, streams.train),
    lossFn: lossFunction(o, net, streams.train),
    model: DiffusionModel.fromNetwork(ema, { device, labelDim, maskPos: o.maskPos, vae: latent?.vae ?? null }),
  };
}

/**
 * Separate random streams, each saved in the training state: initial weights,
 * dropout inside the network, and everything the loss draws (patch sizes,
 * crop offsets, σ, noise). The last two are each rank's own; the initial
 * weights are rank 0's everywhere (broadcast at start, as DDP does).
 */
function trainingStreams(o: ResolvedTrainOptions, place: Placement): { init: Generator; dropout: Generator; train: Generator; patch: Generator | null } {
  const own = rankSeed(o.seed, place.rank, place.worldSize);
  return {
    init: new Generator(o.seed),
    dropout: new Generator(own + 1),
    train: new Generator(own + 2),
    // --same-patch-size: the patch-size draw from a stream every rank shares (the same seed everywhere).
    patch: o.samePatchSize && place.worldSize > 1 ? new Generator(o.seed + 3) : null,
  };
}

/** The trained network and its EMA copy (same initial weights, no gradients, eval mode). */
function createNetworks(config: NetworkConfig, o: ResolvedTrainOptions, device: Device, streams: { init: Generator; dropout: Generator }): { net: Preconditioner; ema: Preconditioner } {
  const net = createNetwork(config, { generator: streams.init });
  net.setGenerator(streams.dropout);
  net.to({ device }).train();
  const compute = { precision: o.precision, channelsLast: o.channelsLast };
  net.setCompute(compute);
  const ema = createNetwork(config, { initialize: false });
  ema.to({ device }).eval();
  ema.setCompute(compute);
  ema.loadStateDict(net.stateDict());
  for (const p of ema.parameters()) p.requiresGrad_(false);
  return { net, ema };
}

/**
 * The training images as tensors on the device, batch by batch: one shuffled
 * stream for all ranks, rank r taking items r, r + world, ... (disjoint shards).
 */
function batchSource(
  o: ResolvedTrainOptions,
  dataset: ImageDataset,
  device: Device,
  place: Placement,
  labelDim: number,
  latent: LatentSource | null,
  trainGen: Generator,
): TrainingComponents['batches'] {
  const loader = new BatchLoader(dataset, { seed: o.seed, xflip: o.xflip, rank: place.rank, worldSize: place.worldSize });
  const R = dataset.resolution, C = dataset.channels;
  return {
    nextBatch(n) {
      const b = loader.next(n);
      // uint8 → [−1, 1] as the official loop: x / 127.5 − 1.
      // Latent training: the posterior sample × scaling factor, before any crop (the official order).
      const images = latent?.preEncoded
        ? latent.preEncoded.sample(b.indices, trainGen, latent.vae.config.scalingFactor, device)
        : scope(() => {
            const pixels = tensor(b.images, [n, C, R, R], { dtype: 'uint8' }).to({ device, dtype: 'float32' }).div(127.5).sub(1);
            return latent ? encodeToLatents(latent.vae, pixels, trainGen) : pixels;
          });
      const labels = labelDim > 0 && b.labels ? tensor(b.labels, [n, labelDim]).to({ device }) : null;
      return { images, labels };
    },
    getState: () => loader.getState(),
    setState: (s) => loader.setState(s as SamplerState),
  };
}

/** The elementwise patch loss of a batch at a patch size, drawing from the loss's stream. */
function lossFunction(o: ResolvedTrainOptions, net: Preconditioner, trainGen: Generator): TrainingComponents['lossFn'] {
  // --mask-pos (the coordinate ablation): zeros where the coordinates would be, in training and sampling.
  const pos = (xPos: Tensor | null) => (xPos && o.maskPos ? zerosLike(xPos) : xPos);
  const denoiser: Denoiser = (x, sigma, xPos, labels, augmentLabels) => net.forward(x, sigma, pos(xPos), labels ?? null, augmentLabels ?? null);
  const noiseLevels = noiseLevelsFor(o.precond);
  const pipe = o.augment > 0 ? augmentPipeFor(o.augment) : null;
  const augment: AugmentFn | null = pipe ? (patches) => pipe.apply(patches, trainGen) : null;
  // EDM's whole-image losses crop nothing (the schedule gives them full size only) and pass no coordinates.
  return (images, labels, patchSize) =>
    patchLoss({ net: denoiser, images, labels, patchSize: o.precond === 'pedm' ? patchSize : null, generator: trainGen, noiseLevels, augment }).loss;
}
