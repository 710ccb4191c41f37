// A trained network that samples into memory: a snapshot, a run directory or
// an official .pkl loaded once, then images for any seeds as bytes with their
// shape. `generate` writes its PNGs from it, and training draws its snapshot
// grids and its metrics' samples through it, so every path samples the same
// way (the coordinate grid, --mask-pos, the σ range, latent decoding).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, resolveDevice, scope, zerosLike, type Device, type Tensor } from '../tensor/index.js';
import { decodeLatents, openVae } from '../latents/codec.js';
import { generateImages, quantizeImages, seedBatches, toUint8 } from '../diffusion/sampler.js';
import { ablationSchedule, type Discretization, type Scaling, type Schedule, type Solver } from '../diffusion/ablation-sampler.js';
import { imageAt, writePng, type ImageBatch } from '../io/images.js';
import type { AutoencoderKL } from '../networks/autoencoder-kl.js';
import type { Preconditioner } from '../networks/precond.js';
import type { SnapshotInfo } from './snapshot.js';
import { checkPrecisionSupport, type Precision } from '../nn/precision.js';
import { loadSnapshotNetwork } from './load-network.js';

/** The sampler's settings (EDM's Heun sampler unless one of the ablation choices is given, as generate.py). */
export interface SamplerOptions {
  /** Sampler steps (default 18). */
  steps?: number | undefined;
  /** Lowest noise level σ (default 0.002, clamped to the network's range). */
  sigmaMin?: number | undefined;
  /** Highest noise level σ (default 80, clamped to the network's range). */
  sigmaMax?: number | undefined;
  /** Time-step exponent ρ (default 7). */
  rho?: number | undefined;
  /** Stochasticity S_churn (default 0: deterministic). */
  sChurn?: number | undefined;
  /** Lowest σ at which churn is added (default 0). */
  sMin?: number | undefined;
  /** Highest σ at which churn is added (default ∞). */
  sMax?: number | undefined;
  /** Scale of the churn noise's standard deviation (default 1). */
  sNoise?: number | undefined;
  /** generate.py's ablation sampler: any of these given runs it instead of EDM's Heun sampler. */
  solver?: Solver | undefined;
  /** The ablation sampler's noise levels: 'vp', 've', 'iddpm' or 'edm'. */
  discretization?: Discretization | undefined;
  /** The ablation sampler's σ(t): 'vp', 've' or 'linear'. */
  schedule?: Schedule | undefined;
  /** The ablation sampler's input scaling s(t): 'vp' or 'none'. */
  scaling?: Scaling | undefined;
  /** A class-conditional network: this class for every image (default: a random class per seed). */
  classIndex?: number | null | undefined;
  /** Classifier-free guidance scale (a network trained with label dropout). */
  cfg?: number | null | undefined;
  /** Canvas side in the network's pixels (default its resolution; larger canvases extrapolate). */
  imageSize?: number | undefined;
  /** The canvas's offset in the coordinate grid, in pixels. */
  xStart?: number | undefined;
  /** The canvas's row offset in the coordinate grid, in pixels (`xStart` is its column offset). */
  yStart?: number | undefined;
}

/** What `DiffusionModel.sample` draws: one image per seed, with any of the sampler settings. */
export interface SampleRequest extends SamplerOptions {
  /** One image per seed; an image depends only on its seed. */
  seeds: readonly number[];
  /** Images per network call (default 64). */
  batch?: number | undefined;
  /** 'nhwc' (default): as PNG stores pixels; 'nchw': as the metrics read them. */
  layout?: 'nhwc' | 'nchw' | undefined;
  /** Called after each batch with the images done so far. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** Generated images: 8-bit pixels of `count` images, `layout` order. */
export interface SampledImages extends ImageBatch {
  /** The byte order: 'nhwc' as PNGs store pixels, 'nchw' as the metrics read them. */
  layout: 'nhwc' | 'nchw';
}

/** How `DiffusionModel.load` opens a network. */
export interface LoadModelOptions {
  /** cpu, cuda, cuda:N or auto (default auto). */
  device?: string | undefined;
  /** The network's arithmetic: fp32 (default) or bf16. */
  precision?: Precision | undefined;
  /** Run the network's convolutions in channels-last memory order (default false; often faster on CPUs with oneDNN). */
  channelsLast?: boolean | undefined;
  /**
   * The VAE that decodes a latent network's samples (default: the one its snapshot names). `false` opens
   * the network alone, as the ONNX export needs it; such a model cannot sample a latent network.
   */
  vae?: string | false | undefined;
  /** Zeros in the coordinate channels (default: as the network was trained). */
  maskPos?: boolean | undefined;
}

/**
 * A trained network ready to sample: `DiffusionModel.load` opens a snapshot, a run directory or an
 * official .pkl; `sample` returns 8-bit pixels with their shape. `generate`, training's sample grids and
 * metrics, `export` and `serve` all go through it. Free it with `dispose`.
 */
export class DiffusionModel {
  private constructor(
    /** The denoising network (EDM-preconditioned). */
    readonly net: Preconditioner,
    /** Where the network runs and samples are drawn. */
    readonly device: Device,
    /** Classes of a class-conditional network (0: unconditional). */
    readonly labelDim: number,
    /** Whether the coordinate channels are given as zeros (a network trained with --mask-pos). */
    readonly maskPos: boolean,
    private readonly vae: AutoencoderKL | null,
    /** What the snapshot says of itself (null for a network handed over by training). */
    readonly info: SnapshotInfo | null,
    /** The snapshot file it was loaded from (a run directory's newest; null for a network handed over by training). */
    readonly path: string | null,
    private readonly owned: boolean,
  ) {}

  /** Loads a network snapshot, a run directory (its latest snapshot) or an official .pkl. */
  static load(path: string, o: LoadModelOptions = {}): DiffusionModel {
    const device = resolveDevice(o.device);
    checkPrecisionSupport(o.precision ?? 'fp32', device);
    const loaded = loadSnapshotNetwork(path, device);
    const { net, info } = loaded;
    try {
      net.setCompute({ precision: o.precision ?? 'fp32', channelsLast: o.channelsLast ?? false });
      // A latent network's samples are decoded by the VAE its snapshot names (or the one given).
      const vaePath = o.vae === false ? undefined : (o.vae ?? info.latent?.vae);
      if (o.vae !== false && !vaePath && net.outChannels === 4)
        throw new Error(`${path}: this network makes 4-channel latents (a latent Patch Diffusion model, e.g. an official --train_on_latents snapshot); pass --vae with the Stable Diffusion VAE that decodes them`);
      const vae = vaePath ? openVae(vaePath, device, '--vae') : null;
      if (vae && vae.config.latentChannels !== net.outChannels) {
        vae.dispose();
        throw new Error(`--vae: ${vaePath} decodes ${vae.config.latentChannels}-channel latents, but the network makes ${net.outChannels} channels`);
      }
      return new DiffusionModel(net, device, info.dataset.labelDim, o.maskPos ?? info.trainingOptions?.maskPos === true, vae, info, loaded.path, true);
    } catch (err) {
      net.dispose();
      throw err;
    }
  }

  /** A network in memory (training's EMA copy): borrowed, so `dispose` leaves it alone. */
  static fromNetwork(net: Preconditioner, o: { device: Device; labelDim: number; maskPos: boolean; vae: AutoencoderKL | null }): DiffusionModel {
    return new DiffusionModel(net, o.device, o.labelDim, o.maskPos, o.vae, null, null, false);
  }

  /** Image channels (after decoding a latent network's output). */
  get channels(): number {
    return this.vae ? this.vae.config.outChannels : this.net.outChannels;
  }

  /** Image side in pixels at the network's own resolution (after decoding latents). */
  get resolution(): number {
    return this.net.imgResolution * (this.vae ? this.vae.downsampleFactor : 1);
  }

  /** Samples one image per seed, batch by batch, into memory. */
  sample(r: SampleRequest): SampledImages {
    if (!r.seeds.length) throw new Error('sample: no seeds given');
    if (!this.vae && this.info && (this.info.latent || this.net.outChannels === 4))
      throw new Error(`sample: ${this.path ?? 'this network'} makes latents and was loaded without the VAE that decodes them (vae: false)`);
    for (const s of r.seeds) if (!Number.isSafeInteger(s) || s < 0 || s >= 2 ** 32) throw new RangeError(`sample: seed ${s} is not an integer in [0, 2^32)`);
    checkSamplerSettings(r);
    checkClassSettings(r, this.labelDim);
    const ablation = r.solver || r.discretization || r.schedule || r.scaling ? { solver: r.solver, discretization: r.discretization, schedule: r.schedule, scaling: r.scaling } : null;
    // The ablation sampler's settings are checked before any work.
    if (ablation) ablationSchedule({ ...ablation, numSteps: r.steps, sigmaMin: r.sigmaMin, sigmaMax: r.sigmaMax, rho: r.rho, netSigmaMin: this.net.sigmaMin, netSigmaMax: this.net.sigmaMax });
    const layout = r.layout ?? 'nhwc';
    const side = (r.imageSize ?? this.net.imgResolution) * (this.vae ? this.vae.downsampleFactor : 1);
    const channels = this.channels;
    const data = new Uint8Array(r.seeds.length * channels * side * side);
    let at = 0;
    for (const seeds of seedBatches(r.seeds, r.batch ?? 64)) {
      const bytes = noGrad(() => {
        const { images } = generateImages(this.denoiser, {
          seeds, channels: this.net.outChannels, resolution: this.net.imgResolution, labelDim: this.labelDim, device: this.device,
          numSteps: r.steps ?? 18, sigmaMin: r.sigmaMin, sigmaMax: r.sigmaMax, rho: r.rho,
          sChurn: r.sChurn, sMin: r.sMin, sMax: r.sMax, sNoise: r.sNoise,
          classIndex: r.classIndex ?? null, cfg: r.cfg ?? null,
          imageSize: r.imageSize, xStart: r.xStart, yStart: r.yStart,
          netSigmaMin: this.net.sigmaMin, netSigmaMax: this.net.sigmaMax, ablation,
        });
        try {
          return scope(() => {
            const decoded = this.vae ? decodeLatents(this.vae, images) : images;
            // The same quantisation either way: NHWC for PNGs, NCHW for the metrics.
            return layout === 'nhwc' ? toUint8(decoded).data : (quantizeImages(decoded).to({ device: 'cpu' }).data() as Uint8Array);
          });
        } finally {
          images.dispose();
        }
      });
      data.set(bytes, at);
      at += bytes.length;
      r.onProgress?.(at / (channels * side * side), r.seeds.length);
    }
    return { data, count: r.seeds.length, height: side, width: side, channels: channels as 1 | 3, layout };
  }

  /** D(x; σ) with the coordinate grid as the network takes it: none for a plain EDM network, zeros with maskPos. */
  private readonly denoiser = (x: Tensor, sigma: Tensor, pos: Tensor | null, labels?: Tensor | null): Tensor =>
    this.net.forward(x, sigma, this.net.positionChannels ? (this.maskPos && pos ? zerosLike(pos) : pos) : null, labels ?? null);

  /** Frees the network (when loaded here) and the VAE. */
  dispose(): void {
    if (!this.owned) return;
    this.net.dispose();
    this.vae?.dispose();
  }
}

/** An integer setting in [min, max], or a RangeError naming it (by its command-line flag), the value and the range. */
function checkInt(flag: string, v: number | undefined | null, min: number, max: number): void {
  if (v !== undefined && v !== null && !(Number.isInteger(v) && v >= min && v <= max)) throw new RangeError(`${flag}: expected an integer from ${min} to ${max}, got ${v}`);
}

/** A real setting in its range (`open`: strictly above `min`), or a RangeError naming it, the value and the range. */
function checkReal(flag: string, v: number | undefined | null, min: number, open: boolean, max = Infinity): void {
  if (v === undefined || v === null) return;
  if (!(Number.isFinite(v) && (open ? v > min : v >= min) && v <= max))
    throw new RangeError(`${flag}: expected a number ${open ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}, got ${v}`);
}

/**
 * The sampler's settings as the user gave them, before anything is clamped to the network's range: what
 * can be checked without the network (generate checks them before it loads one).
 */
export function checkSamplerSettings(r: SamplerOptions & { batch?: number | undefined }): void {
  checkInt('--steps', r.steps, 1, 10_000);
  checkInt('--batch', r.batch, 1, 65536);
  checkInt('--image-size', r.imageSize, 2, 4096);
  checkReal('--sigma-min', r.sigmaMin, 0, true);
  checkReal('--sigma-max', r.sigmaMax, 0, true);
  if (r.sigmaMin !== undefined && r.sigmaMax !== undefined && r.sigmaMin > r.sigmaMax) throw new RangeError(`--sigma-min ${r.sigmaMin} is above --sigma-max ${r.sigmaMax}`);
  checkReal('--rho', r.rho, 0, true);
  checkReal('--s-churn', r.sChurn, 0, false);
  checkReal('--s-min', r.sMin, 0, false);
  checkReal('--s-max', r.sMax, 0, false);
  checkReal('--s-noise', r.sNoise, 0, false);
  checkReal('--cfg', r.cfg, 0, false);
  for (const [flag, v] of [['--x-start', r.xStart], ['--y-start', r.yStart]] as const) checkInt(flag, v, -65536, 65536);
}

/** The settings that depend on the network: guidance and a class need a class-conditional one. */
function checkClassSettings(r: SamplerOptions, labelDim: number): void {
  if (r.cfg != null && r.cfg !== 1 && !labelDim) throw new Error('--cfg needs a class-conditional network; this one is unconditional');
  if (r.classIndex != null) {
    if (!labelDim) throw new Error('--class needs a class-conditional network; this one is unconditional');
    checkInt('--class', r.classIndex, 0, labelDim - 1);
  }
}

/** Writes each image as a PNG (NNNNNN.png by its seed, or the names given) into `dir`; returns the paths. */
export async function writeImages(images: SampledImages, dir: string, names: readonly (string | number)[]): Promise<string[]> {
  if (images.layout !== 'nhwc') throw new Error("writeImages: images must be sampled with layout 'nhwc' (the default)");
  if (names.length !== images.count) throw new Error(`writeImages: ${names.length} names for ${images.count} images`);
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < images.count; k++) {
    const name = names[k]!;
    const file = join(dir, typeof name === 'number' ? `${String(name).padStart(6, '0')}.png` : name);
    await writePng(file, imageAt(images, k), images.width, images.height, images.channels);
    files.push(file);
  }
  return files;
}
