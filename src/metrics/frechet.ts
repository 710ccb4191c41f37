// Fréchet distance between the Gaussians fitted to two feature sets (FID when
// the features are Inception pool3, "Fréchet classifier distance" with our
// Fashion-MNIST classifier), and the feature statistics behind it:
//   FD = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2·(Σ1Σ2)^{1/2}).
// Statistics are accumulated in float64 with the unbiased (N−1) covariance,
// exactly as EDM's fid.py, and can be saved with the identity of the feature
// network and of the dataset so reference statistics are computed once.
import { existsSync } from 'node:fs';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { readNpz, writeNpz } from '../io/npz.js';
import { eigh, scope, tensor, zeros, keep, type Device, type Tensor } from '../tensor/index.js';

/** Mean and covariance of a feature set (float64, row-major covariance). */
export interface FeatureStatistics {
  readonly dim: number;
  readonly count: number;
  readonly mu: Float64Array;
  /** dim × dim, row-major, unbiased (divided by count − 1). */
  readonly sigma: Float64Array;
}

/**
 * Running sums of features and of their outer products in float64 (on the
 * features' device), as EDM's fid.py: μ = Σx/N, Σ = (Σxxᵀ − N·μμᵀ)/(N − 1).
 */
export class FeatureStatsAccumulator {
  readonly dim: number;
  #count = 0;
  #sum: Tensor;
  #sumOuter: Tensor;

  constructor(dim: number, device: Device = 'cpu') {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`FeatureStatsAccumulator: dim must be a positive integer, got ${dim}`);
    this.dim = dim;
    this.#sum = keep(zeros([dim], { dtype: 'float64', device }));
    this.#sumOuter = keep(zeros([dim, dim], { dtype: 'float64', device }));
  }

  get count(): number {
    return this.#count;
  }

  /** Adds a batch of features [n, dim] (any float dtype). */
  add(features: Tensor): void {
    if (features.ndim !== 2 || features.shape[1] !== this.dim)
      throw new Error(`FeatureStatsAccumulator.add: expected features [n, ${this.dim}], got [${features.shape}]`);
    scope(() => {
      const x = features.to({ dtype: 'float64', device: this.#sum.device });
      this.#sum.add_(x.sum(0));
      this.#sumOuter.add_(x.transpose(0, 1).mm(x));
    });
    this.#count += features.shape[0]!;
  }

  /** μ and the unbiased Σ of everything added so far (needs at least 2 samples). */
  finalize(): FeatureStatistics {
    const n = this.#count;
    if (n < 2) throw new Error(`feature statistics need at least 2 samples, got ${n}`);
    return scope(() => {
      const mu = this.#sum.div(n);
      const sigma = this.#sumOuter.sub(mu.unsqueeze(1).mm(mu.unsqueeze(0)).mul(n)).div(n - 1);
      return {
        dim: this.dim,
        count: n,
        mu: mu.to('cpu').data() as Float64Array,
        sigma: sigma.to('cpu').data() as Float64Array,
      };
    });
  }

  dispose(): void {
    this.#sum.dispose();
    this.#sumOuter.dispose();
  }
}

/** Statistics of a whole feature matrix [n, dim]. */
export function featureStatistics(features: Tensor): FeatureStatistics {
  const acc = new FeatureStatsAccumulator(features.shape[1]!, features.device);
  try {
    acc.add(features);
    return acc.finalize();
  } finally {
    acc.dispose();
  }
}

function checkStats(s: FeatureStatistics, which: string): void {
  if (s.mu.length !== s.dim || s.sigma.length !== s.dim * s.dim)
    throw new Error(`${which} statistics are inconsistent: dim ${s.dim}, μ has ${s.mu.length} values, Σ has ${s.sigma.length}`);
}

/** The two terms of the Fréchet distance, and their sum. */
export interface FrechetParts {
  distance: number;
  /** ‖μ1 − μ2‖². */
  meanTerm: number;
  /** Tr(Σ1 + Σ2 − 2·(Σ1Σ2)^{1/2}). */
  covarianceTerm: number;
}

/**
 * Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2), in float64.
 *
 * Tr((Σ1Σ2)^{1/2}) is computed without a general matrix square root: with
 * S = Σ1^{1/2} (from the symmetric eigen-decomposition of Σ1), Σ1Σ2 = S·(SΣ2)
 * and S·Σ2·S = (SΣ2)·S have the same eigenvalues (AB and BA always do), and
 * S·Σ2·S is symmetric positive semi-definite, so its eigenvalues come from a
 * second eigh and Tr((Σ1Σ2)^{1/2}) = Σ √λ. This is why we do not port
 * scipy.linalg.sqrtm(Σ1·Σ2) as EDM does: Σ1Σ2 is not symmetric, its Schur-based
 * square root goes complex (EDM then drops the imaginary part) and loses
 * accuracy when the covariances are singular or nearly so (fewer samples than
 * feature dimensions, dead ReLU units), whereas the symmetric route only sees
 * round-off in the tiny eigenvalues, which we set to 0 before the square root
 * (negative ones, and positive ones at round-off level: see sqrtNonNegative).
 */
export function frechetDistanceParts(a: FeatureStatistics, b: FeatureStatistics): FrechetParts {
  checkStats(a, 'first');
  checkStats(b, 'second');
  if (a.dim !== b.dim) throw new Error(`Fréchet distance: feature dimensions differ (${a.dim} vs ${b.dim})`);
  const d = a.dim;
  let meanTerm = 0;
  let traceSum = 0;
  for (let i = 0; i < d; i++) {
    const diff = a.mu[i]! - b.mu[i]!;
    meanTerm += diff * diff;
    traceSum += a.sigma[i * d + i]! + b.sigma[i * d + i]!;
  }
  const traceSqrt = scope(() => {
    const s1 = symmetric(tensor(a.sigma, [d, d], { dtype: 'float64' }));
    const s2 = symmetric(tensor(b.sigma, [d, d], { dtype: 'float64' }));
    const e1 = eigh(s1);
    const sqrtS1 = e1.vectors.mul(sqrtNonNegative(e1.values, d).unsqueeze(0)).mm(e1.vectors.transpose(0, 1));
    const m = symmetric(sqrtS1.mm(s2).mm(sqrtS1));
    return sqrtNonNegative(eigh(m).values, d).sum().item();
  });
  const covarianceTerm = traceSum - 2 * traceSqrt;
  return { distance: meanTerm + covarianceTerm, meanTerm, covarianceTerm };
}

/** ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2·(Σ1Σ2)^{1/2}); see frechetDistanceParts. */
export function frechetDistance(a: FeatureStatistics, b: FeatureStatistics): number {
  return frechetDistanceParts(a, b).distance;
}

/**
 * √λ of eigenvalues, with the ones at round-off level (below d·ε·max|λ|, the
 * numpy matrix_rank tolerance; negatives included) set to 0: the square root
 * would otherwise blow round-off of ~1e-16·λmax up to ~1e-8·√λmax per
 * eigenvalue, which adds up over the null space of a singular covariance.
 */
function sqrtNonNegative(values: Tensor, d: number): Tensor {
  const cutoff = values.abs().amax().item() * d * 2.220446049250313e-16;
  return values.maskedFill(values.le(cutoff), 0).sqrt();
}

function symmetric(m: Tensor): Tensor {
  return m.add(m.transpose(0, 1)).mul(0.5);
}

// ---- saving and loading ---------------------------------------------------------------------------

/** The `format` metadata of a statistics file. */
export const STATS_FORMAT = 'patch-diffusion/feature-statistics';
/** The version of the statistics file format. */
export const STATS_FORMAT_VERSION = '1';

/** Who made a statistics file: required so cached reference figures are never mixed up. */
export interface StatisticsInfo {
  /** Feature network name, e.g. 'fashion-mnist-classifier' or 'inception-v3-fid'. */
  featureNetwork: string;
  /** sha256 (hex) of the feature network's weights. */
  featureNetworkSha256: string;
  /** Dataset name as the user gave it. */
  dataset: string;
  /** sha256 (hex) of the dataset's pixels (with its geometry), when known. */
  datasetSha256?: string;
  /** Preprocessing identifier (e.g. 'pad28-32,[-1,1]' or 'legacy_tf'). */
  preprocessing?: string;
  /** Any further string fields to record. */
  extra?: Record<string, string>;
}

/** A statistics file as read: the moments, who made them, and the features kept for KID. */
export interface SavedStatistics {
  stats: FeatureStatistics;
  info: StatisticsInfo;
  /**
   * Optional float32 features [n, dim] (a seeded subset of the set) kept for
   * KID, which needs samples rather than moments. On the CPU; caller disposes.
   */
  features: Tensor | null;
  /** All metadata strings as stored. */
  metadata: Record<string, string>;
}

/**
 * Writes μ ('mu', F64 [dim]) and Σ ('sigma', F64 [dim, dim]) — plus optional
 * features ('features', F32 [n, dim]) — to a safetensors file whose metadata
 * records the format, the feature network and its hash, the dataset and the count.
 */
export function saveStatistics(path: string, stats: FeatureStatistics, info: StatisticsInfo, features?: Tensor | null): void {
  checkStats(stats, 'saved');
  if (/\.npz$/i.test(path)) {
    // EDM's fid.py reference format: np.savez(mu, sigma); nothing else fits in it.
    writeNpz(path, { mu: { dtype: 'float64', shape: [stats.dim], data: stats.mu }, sigma: { dtype: 'float64', shape: [stats.dim, stats.dim], data: stats.sigma } });
    return;
  }
  scope(() => {
    const tensors: Record<string, Tensor> = {
      mu: tensor(stats.mu, [stats.dim], { dtype: 'float64' }),
      sigma: tensor(stats.sigma, [stats.dim, stats.dim], { dtype: 'float64' }),
    };
    if (features) {
      if (features.ndim !== 2 || features.shape[1] !== stats.dim) throw new Error(`saveStatistics: features must be [n, ${stats.dim}], got [${features.shape}]`);
      tensors.features = features.to({ dtype: 'float32', device: 'cpu' }).contiguous();
    }
    const metadata: Record<string, string> = {
      ...(info.extra ?? {}),
      format: STATS_FORMAT,
      format_version: STATS_FORMAT_VERSION,
      feature_network: info.featureNetwork,
      feature_network_sha256: info.featureNetworkSha256,
      dataset: info.dataset,
      count: String(stats.count),
      dim: String(stats.dim),
      created: new Date().toISOString(),
    };
    if (info.datasetSha256) metadata.dataset_sha256 = info.datasetSha256;
    if (info.preprocessing) metadata.preprocessing = info.preprocessing;
    writeSafetensors(path, tensors, metadata);
  });
}

/** The feature network named for statistics from an .npz, which does not record it. */
export const NPZ_FEATURE_NETWORK = 'inception-v3 (from .npz)';

/**
 * Reads EDM's / pytorch-fid's reference statistics (.npz with float `mu`
 * [dim] and `sigma` [dim, dim]). The file records neither the detector nor
 * the image count: featureNetworkSha256 is '' and count is 0.
 */
function loadNpzStatistics(path: string): SavedStatistics {
  const arrays = readNpz(path);
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) throw new Error(`${path}: an FID statistics .npz needs arrays 'mu' and 'sigma', found ${[...arrays.keys()].join(', ')}`);
  const dim = mu.shape[0]!;
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== dim || sigma.shape[1] !== dim)
    throw new Error(`${path}: 'mu' [${mu.shape}] and 'sigma' [${sigma.shape}] do not match`);
  const f64 = (a: typeof mu, name: string) => {
    if (a.dtype !== 'float64' && a.dtype !== 'float32') throw new Error(`${path}: '${name}' is ${a.dtype}, expected float64 or float32`);
    return Float64Array.from(a.data as Float64Array | Float32Array);
  };
  const stats: FeatureStatistics = { dim, count: 0, mu: f64(mu, 'mu'), sigma: f64(sigma, 'sigma') };
  checkStats(stats, 'read');
  return { stats, info: { featureNetwork: NPZ_FEATURE_NETWORK, featureNetworkSha256: '', dataset: path, extra: {} }, features: null, metadata: {} };
}

/** Reads a file written by saveStatistics (safetensors), or an EDM / pytorch-fid .npz, checking its format and consistency. */
export function loadStatistics(path: string): SavedStatistics {
  if (!existsSync(path)) throw new Error(`statistics file not found: ${path}`);
  if (/\.npz$/i.test(path)) return loadNpzStatistics(path);
  const { tensors, metadata } = readSafetensors(path);
  try {
    if (metadata.format !== STATS_FORMAT)
      throw new Error(`${path} is not a feature-statistics file (metadata format is ${JSON.stringify(metadata.format)}, expected '${STATS_FORMAT}')`);
    const mu = tensors.get('mu');
    const sigma = tensors.get('sigma');
    if (!mu || !sigma) throw new Error(`${path}: statistics file lacks 'mu' or 'sigma'`);
    const dim = mu.shape[0]!;
    if (mu.ndim !== 1 || sigma.ndim !== 2 || sigma.shape[0] !== dim || sigma.shape[1] !== dim)
      throw new Error(`${path}: 'mu' [${mu.shape}] and 'sigma' [${sigma.shape}] do not match`);
    const count = Number(metadata.count);
    if (!Number.isInteger(count) || count < 2) throw new Error(`${path}: metadata count ${JSON.stringify(metadata.count)} is not a valid sample count`);
    const stats: FeatureStatistics = {
      dim,
      count,
      mu: mu.to('float64').data() as Float64Array,
      sigma: sigma.to('float64').data() as Float64Array,
    };
    const known = new Set(['format', 'format_version', 'feature_network', 'feature_network_sha256', 'dataset', 'dataset_sha256', 'preprocessing', 'count', 'dim']);
    const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => !known.has(k)));
    const info: StatisticsInfo = {
      featureNetwork: metadata.feature_network ?? 'unknown',
      featureNetworkSha256: metadata.feature_network_sha256 ?? '',
      dataset: metadata.dataset ?? 'unknown',
      extra,
    };
    if (metadata.dataset_sha256) info.datasetSha256 = metadata.dataset_sha256;
    if (metadata.preprocessing) info.preprocessing = metadata.preprocessing;
    const features = tensors.get('features') ?? null;
    if (features && (features.ndim !== 2 || features.shape[1] !== dim)) throw new Error(`${path}: 'features' [${features.shape}] does not match dim ${dim}`);
    tensors.delete('features');
    return { stats, info, features, metadata };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
