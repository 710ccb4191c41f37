// The EDM Heun sampler for a web page: the same steps, the same per-seed
// noise (src/web/torch-generator.ts) and the same quantisation as `generate`
// (src/diffusion/sampler.ts), on plain typed arrays, with the network behind
// an async function (onnxruntime-web's session.run in the page). Only the
// deterministic sampler (S_churn = 0) is offered here. The float64 state and
// the operation order follow the Node sampler, so for the same D the images
// are the same; D from ONNX differs from libtorch's by ~1e-6, well inside
// one quantisation level.
import { coordinateValues, edmTimeSteps, type CanvasOptions } from '../diffusion/formulas.js';
import { TorchGenerator } from './torch-generator.js';

/** D(x; σ) of a batch: x float32 [N·C·H·W], σ per image, the grid [N·2·H·W] or null, one-hot labels [N·L] or null. */
export type WebDenoiser = (
  x: Float32Array,
  sigma: Float32Array,
  pos: Float32Array | null,
  labels: Float32Array | null,
  shape: readonly [number, number, number, number],
) => Promise<Float32Array>;

/** What `webSample` draws: seeds, shape and canvas (as `generate`), and the network's inputs. */
export interface WebSampleOptions extends CanvasOptions {
  /** The network takes coordinate channels (Patch Diffusion). */
  coordinates: boolean;
  /** Feed zeros there (a network trained with --mask-pos). */
  maskPos?: boolean;
  /** Sampler steps (default 18). */
  numSteps?: number;
  /** Lowest noise level σ (default 0.002, clamped to the network's range as `generate` does). */
  sigmaMin?: number;
  /** Highest noise level σ (default 80, clamped to the network's range). */
  sigmaMax?: number;
  /** Time-step exponent ρ (default 7). */
  rho?: number;
  /** Called after every step with the current state, for pictures of the denoising. */
  onStep?: (step: number, total: number, state: Float64Array) => void | Promise<void>;
}

/** `webSample`'s images, before quantisation (`toRgba` makes pixels of them). */
export interface WebSampleResult {
  /** float64 [N, C, S, S], roughly in [−1, 1]. */
  images: Float64Array;
  /** The class of each image, or null for an unconditional network. */
  classes: number[] | null;
  /** The canvas side S in pixels. */
  size: number;
}

/** The coordinate grid [N, 2, S, S] (x = column, y = row), as fullCoordinateGrid. */
export function coordinateGrid(n: number, resolution: number, size: number, xStart = 0, yStart = 0): Float32Array {
  const xs = coordinateValues(xStart, size, resolution);
  const ys = coordinateValues(yStart, size, resolution);
  const plane = new Float32Array(2 * size * size);
  for (let a = 0; a < size; a++) {
    plane.set(xs, a * size);
    plane.fill(ys[a]!, size * size + a * size, size * size + (a + 1) * size);
  }
  const out = new Float32Array(n * plane.length);
  for (let k = 0; k < n; k++) out.set(plane, k * plane.length);
  return out;
}

/**
 * EDM's deterministic Heun sampler on typed arrays, with the network behind an async function
 * (onnxruntime-web's session in the page): for the same seeds and network, the images `generate` draws.
 */
export async function webSample(net: WebDenoiser, o: WebSampleOptions): Promise<WebSampleResult> {
  const n = o.seeds.length;
  const size = o.imageSize ?? o.resolution;
  const c = o.channels;
  const per = c * size * size;
  const labelDim = o.labelDim ?? 0;

  // Per seed, as generate: the latents, then the class.
  const latents = new Float64Array(n * per);
  let classes: number[] | null = null;
  const gens = o.seeds.map((s) => new TorchGenerator(s));
  gens.forEach((g, k) => latents.set(g.randn(per), k * per));
  if (labelDim > 0) {
    classes = gens.map((g) => g.randint(labelDim));
    if (o.classIndex !== undefined && o.classIndex !== null) classes = classes.map(() => o.classIndex!);
  }
  const guided = o.cfg !== undefined && o.cfg !== null && o.cfg !== 1;
  if (guided && !classes) throw new Error('classifier-free guidance needs a class-conditional network');
  const rows = guided ? 2 * n : n;
  const grid = !o.coordinates ? null : o.maskPos ? new Float32Array(rows * 2 * size * size) : coordinateGrid(rows, o.resolution, size, o.xStart, o.yStart);
  let labels: Float32Array | null = null;
  if (classes) {
    // Guidance: [zeros, one-hot] on the doubled batch.
    const rows = guided ? 2 * n : n;
    labels = new Float32Array(rows * labelDim);
    classes.forEach((cls, k) => (labels![((guided ? n : 0) + k) * labelDim + cls] = 1));
  }

  const denoise = async (x: Float64Array, t: number): Promise<Float64Array> => {
    const x32 = Float32Array.from(x);
    const rows = guided ? 2 * n : n;
    const input = guided ? concat32(x32, x32) : x32;
    const sigma = new Float32Array(rows).fill(Math.fround(t));
    const d = await net(input, sigma, grid, labels, [rows, c, size, size]);
    if (!guided) return Float64Array.from(d);
    const out = new Float64Array(n * per);
    const w = o.cfg!;
    for (let i = 0; i < out.length; i++) {
      const du = d[i]!, dc = d[out.length + i]!;
      out[i] = du + (dc - du) * w;
    }
    return out;
  };

  const steps = edmTimeSteps({ numSteps: o.numSteps, sigmaMin: o.sigmaMin, sigmaMax: o.sigmaMax, rho: o.rho });
  const total = steps.length - 1;
  let x = latents.map((v) => v * steps[0]!);
  for (let i = 0; i < total; i++) {
    const tCur = steps[i]!, tNext = steps[i + 1]!;
    const dCurD = await denoise(x, tCur);
    const dCur = x.map((v, k) => (v - dCurD[k]!) / tCur);
    let next = x.map((v, k) => v + dCur[k]! * (tNext - tCur));
    if (i < total - 1) {
      const dNextD = await denoise(next, tNext);
      const xi = next;
      next = x.map((v, k) => v + (dCur[k]! * 0.5 + ((xi[k]! - dNextD[k]!) / tNext) * 0.5) * (tNext - tCur));
    }
    x = next;
    await o.onStep?.(i + 1, total, x);
  }
  return { images: x, classes, size };
}

function concat32(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Images [N, C, S, S] in [−1, 1] → uint8 RGBA per image (S·S·4, for a canvas), quantised as generate: clip(x·127.5 + 128) then truncation. */
export function toRgba(images: Float64Array, n: number, channels: number, size: number): Uint8ClampedArray<ArrayBuffer>[] {
  const per = channels * size * size;
  const q = (v: number) => (Number.isNaN(v) ? 0 : Math.trunc(Math.min(255, Math.max(0, v * 127.5 + 128))));
  return Array.from({ length: n }, (_, k) => {
    const out = new Uint8ClampedArray(size * size * 4);
    for (let p = 0; p < size * size; p++) {
      for (let ch = 0; ch < 3; ch++) out[p * 4 + ch] = q(images[k * per + (channels === 1 ? 0 : ch) * size * size + p]!);
      out[p * 4 + 3] = 255;
    }
    return out;
  });
}
