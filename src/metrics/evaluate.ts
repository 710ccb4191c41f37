// One entry point for sample-quality figures: Fréchet and KID distances in
// the feature space of the shipped Fashion-MNIST classifier or of a
// user-supplied FID Inception-v3, and the weight-free ProGAN SWD.
//
// Reference statistics (μ, Σ and a seeded subset of features for KID) are
// computed once per (dataset content, feature network weights) and cached as
// safetensors under the cache directory, keyed by the dataset's name and
// pixel hash and the network's name and weights hash; a statistics file can
// also be given directly as the reference.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from '../data/dataset.js';
import { cacheRoot } from '../util/cache-dir.js';
import { subsetIndices } from '../data/dataset.js';
import { Generator, cat, defaultDevice, keep, scope, tensor, type Device, type Tensor } from '../tensor/index.js';
import { DEFAULT_CLASSIFIER_PATH, loadClassifier } from './classifier.js';
import type { FeatureNetwork } from './feature-network.js';
import { FeatureStatsAccumulator, frechetDistanceParts, loadStatistics, saveStatistics, type FeatureStatistics } from './frechet.js';
import { datasetImages, deriveSeed, imageArrayToTensor, sliceImages, checkImageArray, type ImageArray } from './images.js';
import { loadInception, type InceptionPreprocessing } from './inception.js';
import { kernelInceptionDistance, type KidResult } from './kid.js';
import { SwdDescriptors, swdFromDescriptors, type SwdOptions, type SwdResult } from './swd.js';

/**
 * The metrics `computeMetrics` offers: FD and KID in the shipped classifier's feature space, SWD, and FID and
 * KID with Inception-v3 weights the user supplies.
 */
export const METRIC_NAMES = ['fd-classifier', 'kid-classifier', 'swd', 'fid-inception', 'kid-inception'] as const;
/** One of METRIC_NAMES. */
export type MetricName = (typeof METRIC_NAMES)[number];

/** Generated images for `computeMetrics`: one uint8 NCHW array, or batches of them (sync or async). */
export type GeneratedImages = ImageArray | Iterable<ImageArray> | AsyncIterable<ImageArray>;

/** `computeMetrics`' inputs: the generated images, the reference, the metrics and their settings. */
export interface ComputeMetricsOptions {
  /** Generated images: one uint8 NCHW array, or batches of them (sync or async). */
  generated: GeneratedImages;
  /** Reference: a dataset, or the path of a statistics file written by saveStatistics / this function's cache. */
  reference: ImageDataset | string;
  /** The metrics to compute. */
  metrics: readonly MetricName[];
  /** FID Inception-v3 weights (pytorch-fid's .pth or safetensors); required for the *-inception metrics. */
  detectorPath?: string;
  /** How images are prepared for the detector (default: 'pytorch-fid' for a torch file, 'tf1' for safetensors). */
  detectorPreprocessing?: InceptionPreprocessing;
  /** Classifier weights (default: the shipped models/fashion-mnist-classifier.safetensors). */
  classifierPath?: string;
  /** Seed of every random choice (KID subsets, SWD positions/directions, reference subsets). Default 0. */
  seed?: number;
  /** Where reference statistics are cached; null disables the cache. Default: see defaultCacheDir(). */
  cacheDir?: string | null;
  device?: Device;
  /** Images per forward pass (default 256 for the classifier, 32 for Inception). */
  batchSize?: number;
  kid?: { subsets?: number; subsetSize?: number };
  /** Reference features kept (a fixed seeded subset) for KID. Default 10,000. */
  kidReferenceFeatures?: number;
  swd?: Pick<SwdOptions, 'nhoodsPerImage' | 'nhoodSize' | 'dirRepeats' | 'dirsPerRepeat' | 'minResolution'>;
  /** Use a seeded subset of this many reference images for the statistics (default: all, as EDM's fid.py ref). */
  referenceLimit?: number;
  log?: (line: string) => void;
}

/** A feature network as a report names it: name, weights hash, file and preprocessing. */
export interface NetworkInfo {
  name: string;
  sha256: string;
  path: string;
  preprocessing: string;
}

/**
 * `computeMetrics`' result: each metric asked for, what was measured, with which networks, and how long it
 * took.
 */
export interface MetricsReport {
  metrics: {
    'fd-classifier'?: number;
    'kid-classifier'?: KidSummary;
    swd?: SwdSummary;
    'fid-inception'?: number;
    'kid-inception'?: KidSummary;
  };
  generated: { count: number; channels: number; height: number; width: number };
  reference: {
    name: string;
    /** Images behind the reference statistics. */
    count: number;
    datasetSha256?: string;
    /** 'dataset' (computed now), 'cache' (read from the cache) or 'stats-file' (given). */
    source: 'dataset' | 'cache' | 'stats-file';
    statsFiles: string[];
    /** Reference images used for SWD (= generated images used). */
    swdCount?: number;
  };
  seed: number;
  /** Derived seeds actually used by each random part. */
  seeds: { kid: number; swd: number; kidReferenceSubset: number };
  networks: Record<string, NetworkInfo>;
  notes: string[];
  seconds: number;
}

/**
 * A KID figure as reported: the mean and standard deviation over subsets, and the subsets' count and size.
 */
export interface KidSummary {
  mean: number;
  std: number;
  subsets: number;
  subsetSize: number;
}

/** An SWD figure as reported: per-level values (×10³, finest first), their mean, and the images per set. */
export interface SwdSummary {
  resolutions: number[];
  levels: number[];
  mean: number;
  count: number;
}

/** $PATCH_DIFFUSION_CACHE, else $XDG_CACHE_HOME/patch-diffusion/metrics, else ~/.cache/patch-diffusion/metrics. */
export function defaultCacheDir(): string {
  return join(cacheRoot(), 'metrics');
}

/** sha256 over a dataset's geometry and every image's pixels. */
export function datasetSha256(ds: ImageDataset): string {
  const h = createHash('sha256');
  h.update(`${ds.length}x${ds.channels}x${ds.resolution}x${ds.resolution}\0`);
  for (let i = 0; i < ds.length; i++) h.update(ds.image(i));
  return h.digest('hex');
}

const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'dataset';

/**
 * A reference set's statistics: its feature moments and the features kept for KID, from the cache or computed
 * now.
 */
export interface ReferenceStatistics {
  stats: FeatureStatistics;
  /** Float32 features of a seeded subset, for KID (CPU; caller disposes). */
  features: Tensor | null;
  path: string | null;
  fromCache: boolean;
  datasetSha256: string;
  count: number;
}

/**
 * μ, Σ (all images, or a seeded subset of `limit`) and a seeded subset of
 * features of a dataset under a feature network, from the cache when present.
 */
export function referenceStatistics(
  ds: ImageDataset,
  network: FeatureNetwork,
  options: { cacheDir?: string | null; batchSize?: number; kidFeatures?: number; limit?: number; device?: Device; log?: (line: string) => void; sha256?: string } = {},
): ReferenceStatistics {
  const log = options.log ?? (() => {});
  const dsSha = options.sha256 ?? datasetSha256(ds);
  const kidFeatures = options.kidFeatures ?? 10_000;
  const statIdx = options.limit !== undefined && options.limit < ds.length ? subsetIndices(ds.length, options.limit, 0) : null;
  const count = statIdx ? statIdx.length : ds.length;
  const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
  const key = `${safeName(ds.name)}-${dsSha.slice(0, 16)}-n${count}-${network.name}-${network.sha256.slice(0, 16)}-k${kidFeatures}.safetensors`;
  const path = cacheDir ? join(cacheDir, key) : null;
  if (path && existsSync(path)) {
    try {
      const saved = loadStatistics(path);
      if (saved.info.featureNetworkSha256 === network.sha256 && saved.info.datasetSha256 === dsSha && saved.stats.count === count) {
        log(`reference statistics for ${network.name} from cache ${path}`);
        return { stats: saved.stats, features: saved.features, path, fromCache: true, datasetSha256: dsSha, count };
      }
      saved.features?.dispose();
      log(`cache file ${path} does not match (network, dataset or count); recomputing`);
    } catch (e) {
      log(`cache file ${path} unreadable (${(e as Error).message}); recomputing`);
    }
  }
  const device = options.device ?? defaultDevice();
  const batchSize = options.batchSize ?? 256;
  // Features of a fixed subset (seed 0, independent of the user's seed so the cache is reusable) are kept for KID.
  const keepIdx = subsetIndices(count, Math.min(kidFeatures, count), 0);
  const keepMask = new Uint8Array(count);
  for (const i of keepIdx) keepMask[i] = 1;
  const kept: Tensor[] = [];
  try {
    const stats = datasetFeatureStatistics(ds, statIdx ?? count, network, {
      batchSize,
      device,
      log: (done, seconds) => log(`reference ${network.name}: ${done}/${count} images, ${seconds.toFixed(0)} s`),
      onFeatures: (f, s, e) => {
        const rows: number[] = [];
        for (let k = s; k < e; k++) if (keepMask[k]) rows.push(k - s);
        if (rows.length) kept.push(keep(f.indexSelect(0, tensor(Int32Array.from(rows), [rows.length], { dtype: 'int32', device })).to('cpu')));
      },
    });
    const features = keep(cat(kept, 0));
    if (path) {
      mkdirSync(cacheDir!, { recursive: true });
      saveStatistics(
        path,
        stats,
        { featureNetwork: network.name, featureNetworkSha256: network.sha256, dataset: ds.name, datasetSha256: dsSha, preprocessing: network.preprocessing, extra: { kid_features: `${features.shape[0]} (seed-0 subset)` } },
        features,
      );
      log(`reference statistics for ${network.name} cached at ${path}`);
    }
    return { stats, features, path, fromCache: false, datasetSha256: dsSha, count };
  } finally {
    for (const t of kept) t.dispose();
  }
}

/**
 * μ and Σ of a feature network over images of a dataset (the given indices,
 * or the first n), in batches. `onFeatures` sees each batch's features with
 * its [start, end) positions in the list (inside the batch's scope); `log` is
 * called every 20 batches with the images done and the seconds so far.
 */
export function datasetFeatureStatistics(
  ds: ImageDataset,
  indices: ArrayLike<number> | number,
  network: FeatureNetwork,
  options: { batchSize: number; device: Device; log?: (done: number, seconds: number) => void; onFeatures?: (features: Tensor, start: number, end: number) => void },
): FeatureStatistics {
  const count = typeof indices === 'number' ? indices : indices.length;
  const at = (k: number) => (typeof indices === 'number' ? k : indices[k]!);
  const { batchSize, device } = options;
  const acc = new FeatureStatsAccumulator(network.dim, device);
  const t0 = performance.now();
  try {
    for (let s = 0; s < count; s += batchSize) {
      const e = Math.min(count, s + batchSize);
      const idx = Array.from({ length: e - s }, (_, k) => at(s + k));
      scope(() => {
        const f = network.features(imageArrayToTensor(datasetImages(ds, idx), device));
        acc.add(f);
        options.onFeatures?.(f, s, e);
      });
      if ((s / batchSize) % 20 === 0) options.log?.(e, (performance.now() - t0) / 1000);
    }
    return acc.finalize();
  } finally {
    acc.dispose();
  }
}

async function* batches(generated: GeneratedImages, batchSize: number): AsyncGenerator<ImageArray> {
  const split = function* (a: ImageArray) {
    checkImageArray(a, 'generated images');
    for (let s = 0; s < a.count; s += batchSize) yield sliceImages(a, s, s + batchSize);
  };
  if ('data' in generated && generated.data instanceof Uint8Array) {
    yield* split(generated as ImageArray);
    return;
  }
  if (Symbol.asyncIterator in generated) {
    for await (const b of generated as AsyncIterable<ImageArray>) yield* split(b);
    return;
  }
  for (const b of generated as Iterable<ImageArray>) yield* split(b);
}

interface NetworkUse {
  network: FeatureNetwork;
  fd: MetricName | null;
  kid: MetricName | null;
  acc: FeatureStatsAccumulator;
  features: Tensor[];
}

/** Computes the requested metrics of generated images against a reference. */
export async function computeMetrics(options: ComputeMetricsOptions): Promise<MetricsReport> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 0;
  const device = options.device ?? defaultDevice();
  const wanted = new Set(options.metrics);
  for (const m of wanted) if (!(METRIC_NAMES as readonly string[]).includes(m)) throw new Error(`unknown metric '${m}'; known: ${METRIC_NAMES.join(', ')}`);
  if (wanted.size === 0) throw new Error('no metrics requested');
  const notes: string[] = [];
  const seeds = { kid: deriveSeed(seed, 1), swd: deriveSeed(seed, 2), kidReferenceSubset: 0 };

  // Reference: a dataset or a statistics file.
  const refStats = typeof options.reference === 'string' ? loadStatistics(options.reference) : null;
  const refDataset = typeof options.reference === 'string' ? null : options.reference;
  if (refStats) {
    const { featureNetwork } = refStats.info;
    const usable = featureNetwork === 'fashion-mnist-classifier' ? ['fd-classifier', 'kid-classifier'] : featureNetwork.startsWith('inception-v3') ? ['fid-inception', 'kid-inception'] : [];
    const bad = [...wanted].filter((m) => !usable.includes(m));
    if (bad.length)
      throw new Error(
        `the reference ${options.reference as string} holds ${featureNetwork} statistics, which cannot give ${bad.join(', ')}` +
          (bad.includes('swd') ? ' (SWD needs reference images: give a dataset)' : ''),
      );
  }

  // Feature networks.
  const uses: NetworkUse[] = [];
  const networks: Record<string, NetworkInfo> = {};
  let swd: SwdDescriptors | null = null;
  try {
    if (wanted.has('fd-classifier') || wanted.has('kid-classifier')) {
      const path = options.classifierPath ?? DEFAULT_CLASSIFIER_PATH;
      const net = loadClassifier(path, { device });
      networks[net.name] = { name: net.name, sha256: net.sha256, path, preprocessing: net.preprocessing };
      if (net.metadata.test_accuracy) notes.push(`classifier test accuracy ${net.metadata.test_accuracy} on Fashion-MNIST; classifier figures are only meaningful for Fashion-MNIST-like data`);
      uses.push({ network: net, fd: wanted.has('fd-classifier') ? 'fd-classifier' : null, kid: wanted.has('kid-classifier') ? 'kid-classifier' : null, acc: new FeatureStatsAccumulator(net.dim, device), features: [] });
    }
    if (wanted.has('fid-inception') || wanted.has('kid-inception')) {
      if (!options.detectorPath) throw new Error('fid-inception / kid-inception need Inception weights: pass detectorPath (--detector FILE: pytorch-fid\'s .pth or a safetensors)');
      const net = loadInception(options.detectorPath, { device, ...(options.detectorPreprocessing ? { preprocessing: options.detectorPreprocessing } : {}) });
      networks[net.name] = { name: net.name, sha256: net.sha256, path: options.detectorPath, preprocessing: net.preprocessing };
      uses.push({ network: net, fd: wanted.has('fid-inception') ? 'fid-inception' : null, kid: wanted.has('kid-inception') ? 'kid-inception' : null, acc: new FeatureStatsAccumulator(net.dim, device), features: [] });
    }
    if (refStats) {
      const u = uses[0]!;
      if (refStats.info.featureNetworkSha256 === '')
        notes.push(
          `${options.reference as string} does not record which detector or preprocessing made it: the FID is comparable only if it was ` +
            `${u.network.name} (${u.network.preprocessing}) on the same kind of images`,
        );
      else if (refStats.info.featureNetwork !== u.network.name)
        throw new Error(
          `${options.reference as string} holds ${refStats.info.featureNetwork} statistics (${refStats.info.preprocessing ?? 'unknown preprocessing'}), ` +
            `but the detector runs as ${u.network.name} (${u.network.preprocessing}); use the same --detector-preprocessing or recompute the reference`,
        );
      else if (refStats.info.featureNetworkSha256 !== u.network.sha256)
        throw new Error(
          `${options.reference as string} was computed with ${refStats.info.featureNetwork} weights ${refStats.info.featureNetworkSha256.slice(0, 16)}…, ` +
            `but the loaded network's weights are ${u.network.sha256.slice(0, 16)}…; recompute the reference statistics`,
        );
      if (u.kid && !refStats.features) throw new Error(`${options.reference as string} holds no features, so ${u.kid} cannot be computed (only FD)`);
    }

    // Generated images: one pass, feeding every network and SWD.
    let swdLimit = Infinity;
    let geometry: MetricsReport['generated'] | null = null;
    const batchSize = options.batchSize ?? (uses.some((u) => u.network.dim === 2048) ? 32 : 256);
    let count = 0;
    for await (const b of batches(options.generated, batchSize)) {
      if (b.count === 0) continue;
      if (!geometry) geometry = { count: 0, channels: b.channels, height: b.height, width: b.width };
      else if (b.channels !== geometry.channels || b.height !== geometry.height || b.width !== geometry.width)
        throw new Error(`generated images differ in geometry: ${b.channels}×${b.height}×${b.width} after ${geometry.channels}×${geometry.height}×${geometry.width}`);
      if (wanted.has('swd') && !swd) {
        if (!refDataset) throw new Error('SWD needs reference images');
        if (b.height !== b.width) throw new Error(`SWD needs square images, got ${b.height}×${b.width}`);
        if (refDataset.resolution !== b.height || refDataset.channels !== b.channels)
          throw new Error(
            `SWD compares pixels, so generated (${b.channels}×${b.height}²) and reference (${refDataset.channels}×${refDataset.resolution}²) images must have the same size and channels`,
          );
        swd = new SwdDescriptors(b.height, b.channels, { ...options.swd, seed: seeds.swd, device });
        swdLimit = refDataset.length;
      }
      scope(() => {
        const x = imageArrayToTensor(b, device);
        for (const u of uses) {
          const f = u.network.features(x);
          u.acc.add(f);
          if (u.kid) u.features.push(keep(f.to('cpu')));
        }
        if (swd && swd.count < swdLimit) swd.add(swd.count + b.count > swdLimit ? x.slice(0, 0, swdLimit - swd.count) : x);
      });
      count += b.count;
      if ((count / batchSize) % 20 < 1) log(`generated: ${count} images`);
    }
    if (!geometry || count < 2) throw new Error(`need at least 2 generated images, got ${count}`);
    geometry.count = count;
    if (count < 2000 && (wanted.has('fd-classifier') || wanted.has('fid-inception')))
      notes.push(`FD/FID from ${count} images is strongly biased upwards (EDM uses 50,000); compare only figures with equal counts`);

    const report: MetricsReport = {
      metrics: {},
      generated: geometry,
      reference: { name: '', count: 0, source: refStats ? 'stats-file' : 'dataset', statsFiles: [] },
      seed,
      seeds,
      networks,
      notes,
      seconds: 0,
    };

    // Reference statistics and the figures.
    const dsSha = refDataset ? datasetSha256(refDataset) : undefined;
    for (const u of uses) {
      let ref: { stats: FeatureStatistics; features: Tensor | null; count: number };
      if (refStats) {
        ref = { stats: refStats.stats, features: refStats.features, count: refStats.stats.count };
        report.reference.name = refStats.info.dataset;
        if (refStats.info.datasetSha256) report.reference.datasetSha256 = refStats.info.datasetSha256;
        report.reference.statsFiles.push(options.reference as string);
      } else {
        const r = referenceStatistics(refDataset!, u.network, {
          cacheDir: options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir,
          batchSize,
          device,
          log,
          sha256: dsSha!,
          ...(options.kidReferenceFeatures !== undefined ? { kidFeatures: options.kidReferenceFeatures } : {}),
          ...(options.referenceLimit !== undefined ? { limit: options.referenceLimit } : {}),
        });
        ref = r;
        report.reference.name = refDataset!.name;
        report.reference.datasetSha256 = r.datasetSha256;
        if (r.fromCache) report.reference.source = 'cache';
        if (r.path) report.reference.statsFiles.push(r.path);
      }
      report.reference.count = ref.count;
      try {
        if (u.fd) {
          const parts = frechetDistanceParts(u.acc.finalize(), ref.stats);
          report.metrics[u.fd as 'fd-classifier' | 'fid-inception'] = parts.distance;
        }
        if (u.kid) {
          if (!ref.features) throw new Error(`no reference features for ${u.kid}`);
          const gen = cat(u.features, 0);
          try {
            const k: KidResult = kernelInceptionDistance(gen, ref.features, { ...options.kid, generator: new Generator(seeds.kid) });
            report.metrics[u.kid as 'kid-classifier' | 'kid-inception'] = { mean: k.mean, std: k.std, subsets: k.subsets, subsetSize: k.subsetSize };
            if (k.subsetSize < (options.kid?.subsetSize ?? 1000)) notes.push(`${u.kid}: subsets of ${k.subsetSize} (fewer samples than the default 1000)`);
          } finally {
            gen.dispose();
          }
        }
      } finally {
        ref.features?.dispose();
      }
    }

    if (swd) {
      const n = swd.count;
      if (n < count) notes.push(`SWD used the first ${n} generated images (the reference has only ${n})`);
      const ref = new SwdDescriptors(swd.resolution, swd.channels, { ...options.swd, seed: seeds.swd, device });
      try {
        const idx = subsetIndices(refDataset!.length, n, seeds.swd);
        for (let s = 0; s < n; s += batchSize) ref.addArray(datasetImages(refDataset!, idx.subarray(s, Math.min(n, s + batchSize))), batchSize);
        const r: SwdResult = swdFromDescriptors(swd, ref, options.swd ?? {});
        report.metrics.swd = { resolutions: r.resolutions, levels: r.levels, mean: r.mean, count: r.count };
        report.reference.swdCount = n;
        // With SWD alone no feature statistics named the reference: the data set does.
        if (!report.reference.name) report.reference.name = refDataset!.name;
        if (!report.reference.count) report.reference.count = refDataset!.length;
      } finally {
        ref.dispose();
        swd.dispose();
      }
    }
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  } finally {
    refStats?.features?.dispose();
    swd?.dispose();
    for (const u of uses) {
      u.acc.dispose();
      for (const t of u.features) t.dispose();
      u.network.dispose();
    }
  }
}

/** One line per figure, for people. */
export function formatReport(r: MetricsReport): string {
  const lines: string[] = [];
  const m = r.metrics;
  const fx = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(2) : Math.abs(v) >= 1 ? v.toFixed(4) : v.toPrecision(4));
  if (m['fd-classifier'] !== undefined) lines.push(`fd-classifier   ${fx(m['fd-classifier'])}`);
  if (m['kid-classifier']) lines.push(`kid-classifier  ${fx(m['kid-classifier'].mean)} ± ${fx(m['kid-classifier'].std)} (${m['kid-classifier'].subsets}×${m['kid-classifier'].subsetSize})`);
  if (m['fid-inception'] !== undefined) lines.push(`fid-inception   ${fx(m['fid-inception'])}`);
  if (m['kid-inception']) lines.push(`kid-inception   ${fx(m['kid-inception'].mean)} ± ${fx(m['kid-inception'].std)} (${m['kid-inception'].subsets}×${m['kid-inception'].subsetSize})`);
  if (m.swd) lines.push(`swd ×1e3        ${m.swd.resolutions.map((res, k) => `${res}: ${fx(m.swd!.levels[k]!)}`).join(', ')}; mean ${fx(m.swd.mean)}`);
  lines.push(
    `generated ${r.generated.count} images (${r.generated.channels}×${r.generated.height}×${r.generated.width}); ` +
      `reference ${r.reference.name} (${r.reference.count ? `${r.reference.count} images` : 'image count not recorded'}, ${r.reference.source}); seed ${r.seed}`,
  );
  for (const [name, n] of Object.entries(r.networks)) lines.push(`${name}: sha256 ${n.sha256.slice(0, 16)}… (${n.path})`);
  for (const note of r.notes) lines.push(`note: ${note}`);
  return lines.join('\n');
}
