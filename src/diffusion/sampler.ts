// The EDM Heun sampler as Patch Diffusion's generate.py runs it (EDM's
// Algorithm 2): float64 state, σ steps with ρ = 7 and t_N = 0, optional churn,
// Heun correction on every step but the last, the coordinate grid at every
// network call, optional classifier-free guidance, and per-seed randomness so
// an image depends only on its seed.
import { noGrad } from '../tensor/autograd.js';
import { stack, tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import type { ImageBatch } from '../io/images.js';
import type { Denoiser } from './loss.js';
import { edmTimeSteps, SAMPLER_DEFAULTS, type CanvasOptions, type TimeStepOptions } from './formulas.js';
import { churnNoiseAt, runSteps, samplerDenoiser, type ChurnNoiseSource, type ChurnOptions } from './sampler-shared.js';
export type { ChurnNoiseSource, ChurnOptions } from './sampler-shared.js';
import { ablationSample, type AblationOptions } from './ablation-sampler.js';
import { fullCoordinateGrid } from './patches.js';

export { edmTimeSteps, SAMPLER_DEFAULTS, type TimeStepOptions } from './formulas.js';

/** The churn γ at noise level t: min(S_churn/N, √2 − 1) when S_min ≤ t ≤ S_max, else 0. */
export function churnGamma(t: number, numSteps: number, o: ChurnOptions = {}): number {
  const sChurn = o.sChurn ?? 0;
  const sMin = o.sMin ?? SAMPLER_DEFAULTS.sMin;
  const sMax = o.sMax ?? SAMPLER_DEFAULTS.sMax;
  return sMin <= t && t <= sMax ? Math.min(sChurn / numSteps, Math.SQRT2 - 1) : 0;
}

/**
 * `edmSample`'s settings: the time steps, churn, labels and guidance, and where the churn noise comes from.
 */
export interface EdmSampleOptions extends TimeStepOptions, ChurnOptions {
  /** Conditioning labels [B, label_dim] (one-hot), or null. */
  classLabels?: Tensor | null;
  /** Guidance strength w: D = D_u + w·(D_c − D_u). null/undefined/1 = no guidance. */
  cfg?: number | null;
  /**
   * Unit churn noise per step. Called only for steps where it matters
   * (γ > 0), or at every step when `drawAtEveryStep` says so. Required when
   * S_churn > 0.
   */
  churnNoise?: ChurnNoiseSource | readonly Tensor[];
  /**
   * Ask for churn noise at every step, also where γ = 0, and discard it
   * there: the official randn_like is unconditional, so a per-seed generator
   * stays in step with generate.py's stream. Default true when S_churn > 0.
   */
  drawAtEveryStep?: boolean;
  /** Called after each step with (steps done, total steps). */
  onStep?: (step: number, total: number) => void;
}

/**
 * Runs the EDM Heun sampler from unit latents [B, C, S, S] (x_0 = t_0·latents)
 * with the coordinate grid `xPos` [B, 2, S, S]. Returns float64 images,
 * approximately in [−1, 1]. NFE = 2N − 1 (no correction on the last step).
 */
export function edmSample(net: Denoiser, latents: Tensor, xPos: Tensor | null, o: EdmSampleOptions = {}): Tensor {
  const steps = edmTimeSteps(o);
  const n = steps.length - 1;
  const sChurn = o.sChurn ?? SAMPLER_DEFAULTS.sChurn;
  const sNoise = o.sNoise ?? SAMPLER_DEFAULTS.sNoise;
  if (sChurn > 0 && !o.churnNoise) throw new Error('sampler: S_churn > 0 needs a churn noise source');
  const drawAll = o.drawAtEveryStep ?? sChurn > 0;
  const noiseAt = churnNoiseAt(o.churnNoise);

  return noGrad(() => {
    const denoise = samplerDenoiser(net, xPos, o.classLabels ?? null, o.cfg ?? null);
    const x0 = scope(() => latents.to('float64').mul(steps[0]!));
    return runSteps(x0, n, (i, x) => {
      const tCur = steps[i]!;
      const tNext = steps[i + 1]!;
      const gamma = sChurn > 0 ? churnGamma(tCur, n, o) : 0;
      const tHat = tCur + gamma * tCur;
      let xHat = x;
      if (gamma > 0 || drawAll) {
        const eps = noiseAt(i, x.shape);
        if (gamma > 0) xHat = x.add(eps.to({ dtype: 'float64', device: x.device }).mul(Math.sqrt(tHat * tHat - tCur * tCur) * sNoise));
      }
      // Euler step from t̂ to t_{i+1}.
      const dCur = xHat.sub(denoise(xHat, tHat)).div(tHat);
      let xNext = xHat.add(dCur.mul(tNext - tHat));
      // Heun correction, except on the last step where t_{i+1} = 0.
      if (i < n - 1) {
        const dPrime = xNext.sub(denoise(xNext, tNext)).div(tNext);
        xNext = xHat.add(dCur.mul(0.5).add(dPrime.mul(0.5)).mul(tNext - tHat));
      }
      return xNext;
    }, denoise, o.onStep);
  });
}


// ---- per-seed randomness -------------------------------------------------------------------

/**
 * One generator per seed, as generate.py's StackedRandomGenerator: every draw
 * is made per image from its own generator (seed mod 2³²) and stacked, so an
 * image's latents, label and churn noise depend only on its seed, never on
 * the other seeds in its batch. Draws happen on the CPU and move to `device`.
 */
export class SeedGenerators {
  readonly seeds: readonly number[];
  readonly generators: Generator[];
  readonly device: Device;

  constructor(seeds: readonly number[], device: Device = 'cpu') {
    this.seeds = [...seeds];
    this.generators = seeds.map((s) => {
      if (!Number.isSafeInteger(s) || s < 0) throw new Error(`seed must be a non-negative integer, got ${s}`);
      return new Generator(s % 2 ** 32);
    });
    this.device = device;
  }

  /** Standard normal [B, ...shape]: image k from generator k. */
  randn(shape: readonly number[], dtype: 'float32' | 'float64' = 'float32'): Tensor {
    return scope(() => {
      const parts = this.generators.map((g) => g.randn(shape, { dtype }));
      const out = stack(parts, 0);
      return this.device === 'cpu' ? out : out.to(this.device);
    });
  }

  /** One integer in [0, high) per image (torch.randint(high, size=[]) per generator). */
  randint(high: number): number[] {
    return this.generators.map((g) => scope(() => g.randint(0, high, []).item()));
  }

  /** Churn noise source for edmSample: float64 like the official randn_like(x) on the float64 state. */
  churnNoise(): ChurnNoiseSource {
    return (_step, shape) => this.randn(shape.slice(1), 'float64');
  }
}

/**
 * `generateImages`' settings: the seeds, shape and canvas, the sampler's settings, and the network's σ range.
 */
export interface GenerateOptions extends TimeStepOptions, ChurnOptions, CanvasOptions {
  /** Where the sampler state lives (default the CPU). */
  device?: Device;
  onStep?: (step: number, total: number) => void;
  /** The network's supported σ range: the sampler's σ range is clamped to it, as generate.py does. */
  netSigmaMin?: number;
  netSigmaMax?: number;
  /** Run generate.py's ablation sampler with these choices instead of EDM's Heun sampler. */
  ablation?: Pick<AblationOptions, 'solver' | 'discretization' | 'schedule' | 'scaling'> | null;
}

/** `generateImages`' result: one batch of images, before quantisation, and their classes. */
export interface GenerateResult {
  /** Float64 [B, C, S, S], roughly in [−1, 1]. */
  images: Tensor;
  /** Class index per image, or null for an unconditional net. */
  classes: number[] | null;
}

/**
 * Generates one batch of images for the given seeds, as generate.py does:
 * latents, then the class label, then per-step churn noise, all drawn from
 * each seed's own generator in that order.
 */
export function generateImages(net: Denoiser, o: GenerateOptions): GenerateResult {
  const device = o.device ?? 'cpu';
  const size = o.imageSize ?? o.resolution;
  const b = o.seeds.length;
  if (b === 0) throw new Error('generateImages: no seeds');
  const rnd = new SeedGenerators(o.seeds, device);
  return scope(() => {
    const latents = rnd.randn([o.channels, size, size]);
    let classes: number[] | null = null;
    let labels: Tensor | null = null;
    const labelDim = o.labelDim ?? 0;
    if (labelDim > 0) {
      // The random draw happens even when a class is forced, as in generate.py, so the stream stays aligned.
      classes = rnd.randint(labelDim);
      if (o.classIndex !== undefined && o.classIndex !== null) {
        if (!Number.isInteger(o.classIndex) || o.classIndex < 0 || o.classIndex >= labelDim)
          throw new Error(`class index ${o.classIndex} is outside [0, ${labelDim})`);
        classes = classes.map(() => o.classIndex!);
      }
      labels = oneHot(classes, labelDim, device);
    } else if (o.classIndex !== undefined && o.classIndex !== null) {
      throw new Error('a class index was given but the network is unconditional');
    }
    const xPos = fullCoordinateGrid(b, o.resolution, { xStart: o.xStart, yStart: o.yStart, imageSize: size, device });
    const churnNoise = (o.sChurn ?? 0) > 0 ? rnd.churnNoise() : undefined;
    const images = o.ablation
      ? ablationSample(net, latents, xPos, { ...o, ...o.ablation, classLabels: labels, churnNoise })
      : edmSample(net, latents, xPos, {
          ...o,
          sigmaMin: Math.max(o.sigmaMin ?? SAMPLER_DEFAULTS.sigmaMin, o.netSigmaMin ?? 0),
          sigmaMax: Math.min(o.sigmaMax ?? SAMPLER_DEFAULTS.sigmaMax, o.netSigmaMax ?? Infinity),
          classLabels: labels,
          churnNoise,
        });
    return { images, classes };
  });
}

/** One-hot float32 rows [B, dim]. */
export function oneHot(classes: readonly number[], dim: number, device: Device = 'cpu'): Tensor {
  const data = new Float32Array(classes.length * dim);
  classes.forEach((c, k) => {
    if (!Number.isInteger(c) || c < 0 || c >= dim) throw new Error(`class ${c} is outside [0, ${dim})`);
    data[k * dim + c] = 1;
  });
  return tensor(data, [classes.length, dim], { device });
}

/**
 * Splits seeds into batches as generate.py's tensor_split does for one
 * process: ceil(len / maxBatch) batches, the first (len mod batches) one longer.
 */
export function seedBatches(seeds: readonly number[], maxBatch: number): number[][] {
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`batch size must be a positive integer, got ${maxBatch}`);
  if (seeds.length === 0) return [];
  const count = Math.ceil(seeds.length / maxBatch);
  const base = Math.floor(seeds.length / count);
  const extra = seeds.length % count;
  const out: number[][] = [];
  let at = 0;
  for (let k = 0; k < count; k++) {
    const len = base + (k < extra ? 1 : 0);
    out.push(seeds.slice(at, at + len));
    at += len;
  }
  return out;
}

// ---- output ----------------------------------------------------------------------------------

/**
 * Images in [−1, 1] (any float dtype) to a uint8 tensor of the same shape:
 * clip(x·127.5 + 128, 0, 255) then truncation, exactly as generate.py. The
 * +128 (not +127.5) with truncation rounds to nearest: x = 0 gives 128, and
 * values map to round(x·127.5 + 127.5) up to ties. NaN becomes 0 (black)
 * instead of whatever the float→uint8 cast happens to produce.
 */
export function quantizeImages(images: Tensor): Tensor {
  return scope(() => images.to('float64').mul(127.5).add(128).nanToNum(0, 255, 0).clamp(0, 255).to('uint8'));
}

/** Images in [−1, 1] (NCHW) to uint8 NHWC bytes for PNG writing, quantised by quantizeImages. */
export function toUint8(images: Tensor): ImageBatch {
  if (images.ndim !== 4) throw new Error(`toUint8: images must be [N, C, H, W], got [${images.shape}]`);
  const [count, channels, height, width] = images.shape as [number, number, number, number];
  if (channels !== 1 && channels !== 3) throw new Error(`toUint8: ${channels} channels cannot be written as an image (decode latents first)`);
  const data = scope(() => quantizeImages(images).permute(0, 2, 3, 1).contiguous().to('cpu').data() as Uint8Array);
  return { data, count, height, width, channels };
}
