// What the EDM sampler (sampler.ts) and the ablation sampler share: the
// stochastic "churn" options and noise source, and how they call the network: float32 input and a 0-dim float32 σ
// that broadcasts over the batch (the official precond casts both), the
// coordinate grid at every call, and classifier-free guidance as one call on
// the doubled batch [x, x] with labels [zeros, one-hot]:
// D = D_u + w·(D_c − D_u). The result comes back as float64 (the sampler state).
import { cat, scalar, zeros } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { adaptThreads } from '../tensor/cpu-share.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Denoiser } from './loss.js';

export interface SamplerDenoiser {
  /** D(x; σ) for a float64 state x, as float64. */
  (x: Tensor, sigma: number): Tensor;
  /** Frees the doubled grid and labels built for guidance. */
  dispose(): void;
}

/** Binds the grid, labels and guidance strength (null or 1: none) to `net`. */
export function samplerDenoiser(net: Denoiser, xPos: Tensor | null, classLabels: Tensor | null, cfg: number | null): SamplerDenoiser {
  const guided = cfg !== null && cfg !== 1;
  if (guided && !classLabels) throw new Error('sampler: classifier-free guidance needs class labels');
  // The doubled grid and labels are built once per batch.
  const { pos, labels } = scope(() =>
    guided
      ? {
          pos: xPos ? cat([xPos, xPos], 0) : null,
          labels: cat([zeros(classLabels!.shape, { dtype: classLabels!.dtype, device: classLabels!.device }), classLabels!], 0),
        }
      : { pos: xPos, labels: classLabels },
  );
  const denoise = ((x: Tensor, t: number): Tensor =>
    scope(() => {
      const sigma = scalar(t, { dtype: 'float32', device: x.device });
      const x32 = x.to('float32');
      if (!guided) return net(x32, sigma, pos, labels).to('float64');
      const both = net(cat([x32, x32], 0), sigma, pos, labels).to('float64');
      const [du, dc] = both.chunk(2, 0) as [Tensor, Tensor];
      return du.add(dc.sub(du).mul(cfg!));
    })) as SamplerDenoiser;
  denoise.dispose = () => {
    if (pos && pos !== xPos) pos.dispose();
    if (labels && labels !== classLabels) labels.dispose();
  };
  return denoise;
}

/** EDM's stochastic sampling settings (S_churn, S_min, S_max, S_noise); the defaults are deterministic. */
export interface ChurnOptions {
  /** Total churn; γ = min(S_churn/N, √2 − 1) inside [S_min, S_max]. 0 = deterministic. */
  sChurn?: number;
  /** Lowest σ at which churn is added (default 0). */
  sMin?: number;
  /** Highest σ at which churn is added (default ∞). */
  sMax?: number;
  /** Inflation of the added noise's standard deviation. */
  sNoise?: number;
}

/** Supplies the unit churn noise of step k with x's shape (float64 preferred). */
export type ChurnNoiseSource = (step: number, shape: readonly number[]) => Tensor;

/** The churn noise of step k from a function or a list (the sampler options' two forms). */
export function churnNoiseAt(src: ChurnNoiseSource | readonly Tensor[] | undefined): ChurnNoiseSource {
  return (k, shape) => {
    if (!src) throw new Error('sampler: no churn noise source given');
    if (typeof src === 'function') return src(k, shape);
    const t = src[k];
    if (!t) throw new Error(`sampler: no churn noise given for step ${k}`);
    return t;
  };
}

/**
 * The loop both samplers share: step i maps the state to the next one inside
 * its own scope, the previous state is freed by hand (a scope around the
 * whole loop would hold every step's state until the end), `onStep` follows
 * each step, and the denoiser's guidance tensors are freed at the end.
 */
export function runSteps(
  x0: Tensor,
  n: number,
  step: (i: number, x: Tensor) => Tensor,
  denoise: SamplerDenoiser,
  onStep?: (step: number, total: number) => void,
): Tensor {
  let x = x0;
  try {
    for (let i = 0; i < n; i++) {
      adaptThreads();
      const next = scope(() => step(i, x));
      x.dispose();
      x = next;
      onStep?.(i + 1, n);
    }
  } catch (err) {
    x.dispose();
    throw err;
  } finally {
    denoise.dispose();
  }
  return x;
}
