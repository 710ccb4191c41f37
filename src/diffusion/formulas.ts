// Closed-form pieces of the sampler and of the coordinate channels that need
// no tensors: the EDM time steps, the coordinate of a pixel, and what a sampler is asked to draw. Plain
// JavaScript, so the browser's sampler (src/web) computes exactly what Node does.

/** The EDM time steps' settings; each unset one takes SAMPLER_DEFAULTS. */
export interface TimeStepOptions {
  /** Sampler steps N (default 18). */
  numSteps?: number;
  /** Lowest noise level σ (default 0.002). */
  sigmaMin?: number;
  /** Highest noise level σ (default 80). */
  sigmaMax?: number;
  /** Time-step exponent ρ (default 7). */
  rho?: number;
}

/** What a sampler is asked to draw, in the CLI as in the browser: seeds, image shape, canvas and class. */
export interface CanvasOptions {
  seeds: readonly number[];
  /** Image channels (3 for RGB, 4 for latents). */
  channels: number;
  /** Training resolution: the coordinate grid is normalised over it. */
  resolution: number;
  /** Canvas side (default the resolution); larger extrapolates the coordinates (outpainting). */
  imageSize?: number;
  xStart?: number;
  yStart?: number;
  /** label_dim of a conditional net; each seed draws a random class unless classIndex is set. */
  labelDim?: number;
  classIndex?: number | null;
  /** Classifier-free guidance strength (null/1: none). */
  cfg?: number | null;
}

/** The EDM sampler's defaults, as the official generate.py: 18 steps, σ from 80 to 0.002, ρ 7, no churn. */
export const SAMPLER_DEFAULTS = {
  numSteps: 18,
  sigmaMin: 0.002,
  sigmaMax: 80,
  rho: 7,
  sChurn: 0,
  sMin: 0,
  sMax: Infinity,
  sNoise: 1,
} as const;

/**
 * t_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i < N, then
 * t_N = 0: N + 1 values, float64. N = 1 gives [σ_max, 0] (the official code
 * would divide 0 by 0 there).
 */
export function edmTimeSteps(o: TimeStepOptions = {}): Float64Array {
  const n = o.numSteps ?? SAMPLER_DEFAULTS.numSteps;
  const sMin = o.sigmaMin ?? SAMPLER_DEFAULTS.sigmaMin;
  const sMax = o.sigmaMax ?? SAMPLER_DEFAULTS.sigmaMax;
  const rho = o.rho ?? SAMPLER_DEFAULTS.rho;
  if (!Number.isInteger(n) || n < 1) throw new Error(`sampler: the number of steps must be a positive integer, got ${n}`);
  if (!(sMin > 0 && sMax >= sMin)) throw new Error(`sampler: need 0 < sigma_min ≤ sigma_max, got ${sMin}, ${sMax}`);
  if (!(rho > 0)) throw new Error(`sampler: rho must be positive, got ${rho}`);
  const t = new Float64Array(n + 1);
  const a = sMax ** (1 / rho);
  const b = sMin ** (1 / rho);
  for (let i = 0; i < n; i++) t[i] = (a + (n === 1 ? 0 : i / (n - 1)) * (b - a)) ** rho;
  t[n] = 0;
  return t;
}


/**
 * The normalised coordinate of integer positions, ((k / (R − 1)) − 0.5)·2,
 * rounded step by step in float32 exactly as the official int64 → float32
 * true division does on the CPU. Index 0 maps to −1 and R − 1 to +1 (pixel
 * indices, not pixel edges or centres); positions outside [0, R − 1] give
 * values beyond [−1, 1] (outpainting).
 */
export function coordinateValues(start: number, count: number, resolution: number): Float32Array {
  if (!Number.isInteger(resolution) || resolution < 2) throw new Error(`coordinates: resolution must be an integer ≥ 2, got ${resolution}`);
  const out = new Float32Array(count);
  const f = Math.fround;
  for (let k = 0; k < count; k++) out[k] = f(f(f((start + k) / (resolution - 1)) - 0.5) * 2);
  return out;
}
