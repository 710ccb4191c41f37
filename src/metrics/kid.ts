// Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimate of
// MMD² with the cubic polynomial kernel k(x, y) = (γ·xᵀy + c0)³, γ = 1/d,
// c0 = 1, averaged over random subsets — torch-fidelity's metric_kid.py
// (defaults 100 subsets of min(1000, n) samples drawn without replacement;
// std is the population std over subsets, numpy's default). Unbiased, so it
// is meaningful with a few thousand samples, unlike FD.
import { Generator, scope, type Tensor } from '../tensor/index.js';

/** KID's settings: subsets, their size, the polynomial kernel, and the seed. */
export interface KidOptions {
  /** Number of random subsets (default 100). */
  subsets?: number;
  /** Samples per subset (default 1000; capped at the smaller set's size). */
  subsetSize?: number;
  /** Kernel degree (default 3). */
  degree?: number;
  /** Kernel scale γ (default 1/d). */
  gamma?: number;
  /** Kernel offset c0 (default 1). */
  coef0?: number;
  /** Draws the subsets. Give this or `seed`; with neither, Generator(0). */
  generator?: Generator;
  seed?: number;
}

/** Kernel distance (KID) over random subsets: the mean and spread of the unbiased MMD² estimates. */
export interface KidResult {
  /** Mean of the per-subset unbiased MMD² estimates. */
  mean: number;
  /** Population standard deviation over subsets. */
  std: number;
  subsets: number;
  subsetSize: number;
  /** The per-subset values. */
  values: number[];
  /** Seed of the generator the subsets came from. */
  seed: number;
}

/**
 * Unbiased MMD² between two equal-size samples x, y [m, d] with the polynomial
 * kernel: (ΣK_xx − tr K_xx + ΣK_yy − tr K_yy)/(m(m−1)) − 2·ΣK_xy/m². float64.
 */
export function polynomialMmd2Unbiased(x: Tensor, y: Tensor, options: Pick<KidOptions, 'degree' | 'gamma' | 'coef0'> = {}): number {
  if (x.ndim !== 2 || y.ndim !== 2 || x.shape[1] !== y.shape[1])
    throw new Error(`MMD: expected features [m, d] and [m, d], got [${x.shape}] and [${y.shape}]`);
  const m = x.shape[0]!;
  if (y.shape[0] !== m) throw new Error(`MMD: the unbiased estimator here needs equal sample counts, got ${m} and ${y.shape[0]}`);
  if (m < 2) throw new Error(`MMD: need at least 2 samples per set, got ${m}`);
  const d = x.shape[1]!;
  const degree = options.degree ?? 3;
  const gamma = options.gamma ?? 1 / d;
  const coef0 = options.coef0 ?? 1;
  return scope(() => {
    const a = x.double();
    const b = y.double();
    const kernel = (p: Tensor, q: Tensor) => p.mm(q.transpose(0, 1)).mul(gamma).add(coef0).pow(degree);
    // The diagonal k(x_i, x_i) from the squared norms, without materialising a diagonal op.
    const diag = (p: Tensor) => p.square().sum(1).mul(gamma).add(coef0).pow(degree).sum();
    const kxx = kernel(a, a).sum().sub(diag(a));
    const kyy = kernel(b, b).sum().sub(diag(b));
    const kxy = kernel(a, b).sum();
    return kxx.add(kyy).div(m * (m - 1)).sub(kxy.mul(2 / (m * m))).item();
  });
}

/**
 * KID between feature sets x [n, d] and y [n', d]: mean ± std of the unbiased
 * MMD² over `subsets` random subsets of min(subsetSize, n, n') samples from each.
 */
export function kernelInceptionDistance(x: Tensor, y: Tensor, options: KidOptions = {}): KidResult {
  if (x.ndim !== 2 || y.ndim !== 2 || x.shape[1] !== y.shape[1])
    throw new Error(`KID: expected features [n, d] and [n', d], got [${x.shape}] and [${y.shape}]`);
  const subsets = options.subsets ?? 100;
  if (!Number.isInteger(subsets) || subsets < 1) throw new RangeError(`KID: subsets must be a positive integer, got ${subsets}`);
  const requested = options.subsetSize ?? 1000;
  if (!Number.isInteger(requested) || requested < 2) throw new RangeError(`KID: subsetSize must be an integer >= 2, got ${requested}`);
  const n1 = x.shape[0]!;
  const n2 = y.shape[0]!;
  const m = Math.min(requested, n1, n2);
  if (m < 2) throw new Error(`KID: need at least 2 samples in each set, got ${n1} and ${n2}`);
  const generator = options.generator ?? new Generator(options.seed ?? 0);
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    values.push(
      scope(() => {
        const ix = generator.randperm(n1).slice(0, 0, m).to({ device: x.device });
        const iy = generator.randperm(n2).slice(0, 0, m).to({ device: y.device });
        return polynomialMmd2Unbiased(x.indexSelect(0, ix), y.indexSelect(0, iy), options);
      }),
    );
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  return { mean, std, subsets, subsetSize: m, values, seed: generator.seed };
}
