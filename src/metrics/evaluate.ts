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
import { FeatureStatsAccumulator, frechetDistanceParts, loadStatistics, saveStatistics, type FeatureStatistics, type SavedStatistics } from './frechet.js';
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

/** A feature network and what the generated images have left in it so far. */
interface NetworkUse {
  network: FeatureNetwork;
  /** Where its weights came from, for the report. */
  path: string;
  fd: 'fd-classifier' | 'fid-inception' | null;
  kid: 'kid-classifier' | 'kid-inception' | null;
  acc: FeatureStatsAccumulator;
  /** Generated features on the CPU: KID needs samples, not moments. */
  features: Tensor[];
  /** A caveat its file gives about reading its figures. */
  note: string | null;
}

/** A statistics file given as the reference, as read. */
interface StatsFile {
  path: string;
  saved: SavedStatistics;
}

/** The reference behind one network's figures, from a statistics file or a data set. */
interface Reference {
  name: string;
  datasetSha256: string | undefined;
  stats: FeatureStatistics;
  features: Tensor | null;
  count: number;
  /** The statistics file it was read from or cached in. */
  path: string | null;
  fromCache: boolean;
}

/** Where the SWD reference images come from and how the descriptors are drawn. */
interface SwdReference {
  dataset: ImageDataset | null;
  options: ComputeMetricsOptions['swd'];
  seed: number;
}

/** Computes the requested metrics of generated images against a reference. */
export async function computeMetrics(options: ComputeMetricsOptions): Promise<MetricsReport> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 0;
  const device = options.device ?? defaultDevice();
  const wanted = checkMetricNames(options.metrics);
  const notes: string[] = [];
  const seeds = { kid: deriveSeed(seed, 1), swd: deriveSeed(seed, 2), kidReferenceSubset: 0 };
  const statsFile: StatsFile | null = typeof options.reference === 'string' ? { path: options.reference, saved: loadStatistics(options.reference) } : null;
  const refDataset = typeof options.reference === 'string' ? null : options.reference;
  const swdRef: SwdReference = { dataset: refDataset, options: options.swd, seed: seeds.swd };
  const uses: NetworkUse[] = [];
  let swd: SwdDescriptors | null = null;
  try {
    if (statsFile) checkStatsFileCovers(statsFile, wanted);
    if (wanted.has('fd-classifier') || wanted.has('kid-classifier')) uses.push(openClassifier(options.classifierPath ?? DEFAULT_CLASSIFIER_PATH, wanted, device));
    if (wanted.has('fid-inception') || wanted.has('kid-inception')) uses.push(openDetector(options.detectorPath, options.detectorPreprocessing, wanted, device));
    for (const u of uses) if (u.note) notes.push(u.note);
    // A statistics file serves only the network it was made with, so it is the one network open.
    const statsNote = statsFile ? checkStatsFileMatches(statsFile, uses[0]!) : null;
    if (statsNote) notes.push(statsNote);

    // Inception's 299² inputs make big batches costly in memory.
    const batchSize = options.batchSize ?? (uses.some((u) => u.network.dim === 2048) ? 32 : 256);
    const pass = await readGenerated(options.generated, uses, wanted.has('swd') ? swdRef : null, batchSize, device, log);
    swd = pass.swd;
    const generated = pass.geometry;
    if (generated.count < 2000 && (wanted.has('fd-classifier') || wanted.has('fid-inception')))
      notes.push(`FD/FID from ${generated.count} images is strongly biased upwards (EDM uses 50,000); compare only figures with equal counts`);
    const reference: MetricsReport['reference'] = { name: '', count: 0, source: statsFile ? 'stats-file' : 'dataset', statsFiles: [] };
    const report: MetricsReport = { metrics: {}, generated, reference, seed, seeds, networks: networkInfos(uses), notes, seconds: 0 };

    const dsSha = refDataset ? datasetSha256(refDataset) : undefined;
    for (const u of uses) {
      const ref = statsFile ? statsFileReference(statsFile) : datasetReference(refDataset!, dsSha!, u.network, options, batchSize, device, log);
      recordReference(report.reference, ref);
      const figures = distanceFigures(u, ref, options.kid, seeds.kid);
      Object.assign(report.metrics, figures.metrics);
      notes.push(...figures.notes);
    }

    if (swd) {
      if (swd.count < generated.count) notes.push(`SWD used the first ${swd.count} generated images (the reference has only ${swd.count})`);
      report.metrics.swd = swdFigure(swd, refDataset!, swdRef, batchSize, device);
      report.reference.swdCount = swd.count;
      // With SWD alone no feature statistics named the reference: the data set does.
      if (!report.reference.name) report.reference.name = refDataset!.name;
      if (!report.reference.count) report.reference.count = refDataset!.length;
    }
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  } finally {
    disposeAll(statsFile, swd, uses);
  }
}

function checkMetricNames(metrics: readonly MetricName[]): Set<MetricName> {
  const wanted = new Set(metrics);
  for (const m of wanted) if (!(METRIC_NAMES as readonly string[]).includes(m)) throw new Error(`unknown metric '${m}'; known: ${METRIC_NAMES.join(', ')}`);
  if (wanted.size === 0) throw new Error('no metrics requested');
  return wanted;
}

/** A statistics file holds one network's moments, so it can serve only that network's metrics (and never SWD). */
function checkStatsFileCovers({ path, saved }: StatsFile, wanted: ReadonlySet<MetricName>): void {
  const { featureNetwork } = saved.info;
  const usable = featureNetwork === 'fashion-mnist-classifier' ? ['fd-classifier', 'kid-classifier'] : featureNetwork.startsWith('inception-v3') ? ['fid-inception', 'kid-inception'] : [];
  const bad = [...wanted].filter((m) => !usable.includes(m));
  if (bad.length)
    throw new Error(
      `the reference ${path} holds ${featureNetwork} statistics, which cannot give ${bad.join(', ')}` +
        (bad.includes('swd') ? ' (SWD needs reference images: give a dataset)' : ''),
    );
}

function openClassifier(path: string, wanted: ReadonlySet<MetricName>, device: Device): NetworkUse {
  const network = loadClassifier(path, { device });
  const accuracy = network.metadata.test_accuracy;
  const note = accuracy ? `classifier test accuracy ${accuracy} on Fashion-MNIST; classifier figures are only meaningful for Fashion-MNIST-like data` : null;
  return networkUse(network, path, wanted.has('fd-classifier') ? 'fd-classifier' : null, wanted.has('kid-classifier') ? 'kid-classifier' : null, device, note);
}

function openDetector(path: string | undefined, preprocessing: InceptionPreprocessing | undefined, wanted: ReadonlySet<MetricName>, device: Device): NetworkUse {
  if (!path) throw new Error('fid-inception / kid-inception need Inception weights: pass detectorPath (--detector FILE: pytorch-fid\'s .pth or a safetensors)');
  const network = loadInception(path, { device, ...(preprocessing ? { preprocessing } : {}) });
  return networkUse(network, path, wanted.has('fid-inception') ? 'fid-inception' : null, wanted.has('kid-inception') ? 'kid-inception' : null, device, null);
}

function networkUse(network: FeatureNetwork, path: string, fd: NetworkUse['fd'], kid: NetworkUse['kid'], device: Device, note: string | null): NetworkUse {
  return { network, path, fd, kid, acc: new FeatureStatsAccumulator(network.dim, device), features: [], note };
}

function networkInfos(uses: readonly NetworkUse[]): Record<string, NetworkInfo> {
  return Object.fromEntries(uses.map(({ network, path }) => [network.name, { name: network.name, sha256: network.sha256, path, preprocessing: network.preprocessing }]));
}

/**
 * Statistics are comparable only under the same detector weights and
 * preprocessing. Files that do not record them (pytorch-fid's .npz) cannot be
 * checked, so they get a note (returned) instead of an error.
 */
function checkStatsFileMatches({ path, saved }: StatsFile, use: NetworkUse): string | null {
  const { info } = saved;
  const net = use.network;
  let note: string | null = null;
  if (info.featureNetworkSha256 === '')
    note = `${path} does not record which detector or preprocessing made it: the FID is comparable only if it was ${net.name} (${net.preprocessing}) on the same kind of images`;
  else if (info.featureNetwork !== net.name)
    throw new Error(
      `${path} holds ${info.featureNetwork} statistics (${info.preprocessing ?? 'unknown preprocessing'}), ` +
        `but the detector runs as ${net.name} (${net.preprocessing}); use the same --detector-preprocessing or recompute the reference`,
    );
  else if (info.featureNetworkSha256 !== net.sha256)
    throw new Error(
      `${path} was computed with ${info.featureNetwork} weights ${info.featureNetworkSha256.slice(0, 16)}…, ` +
        `but the loaded network's weights are ${net.sha256.slice(0, 16)}…; recompute the reference statistics`,
    );
  if (use.kid && !saved.features) throw new Error(`${path} holds no features, so ${use.kid} cannot be computed (only FD)`);
  return note;
}

/**
 * Reads the generated images once, whatever form they come in, feeding every
 * network and SWD. The SWD descriptors are opened on the first batch because
 * only then is the image size known; once returned they are the caller's to
 * dispose, and if reading fails they are disposed here.
 */
async function readGenerated(
  generated: GeneratedImages,
  uses: readonly NetworkUse[],
  swdRef: SwdReference | null,
  batchSize: number,
  device: Device,
  log: (line: string) => void,
): Promise<{ geometry: MetricsReport['generated']; swd: SwdDescriptors | null }> {
  // SWD pairs each generated image with a reference image, so it takes no more than the reference holds.
  const swdLimit = swdRef?.dataset?.length ?? Infinity;
  let geometry: MetricsReport['generated'] | null = null;
  let swd: SwdDescriptors | null = null;
  let count = 0;
  try {
    for await (const b of batches(generated, batchSize)) {
      if (b.count === 0) continue;
      if (!geometry) geometry = { count: 0, channels: b.channels, height: b.height, width: b.width };
      else checkSameGeometry(geometry, b);
      if (swdRef && !swd) swd = openSwd(b, swdRef, device);
      feedBatch(b, uses, swd, swdLimit, device);
      count += b.count;
      if ((count / batchSize) % 20 < 1) log(`generated: ${count} images`);
    }
    if (!geometry || count < 2) throw new Error(`need at least 2 generated images, got ${count}`);
    geometry.count = count;
    return { geometry, swd };
  } catch (e) {
    swd?.dispose();
    throw e;
  }
}

function checkSameGeometry(first: MetricsReport['generated'], b: ImageArray): void {
  if (b.channels !== first.channels || b.height !== first.height || b.width !== first.width)
    throw new Error(`generated images differ in geometry: ${b.channels}×${b.height}×${b.width} after ${first.channels}×${first.height}×${first.width}`);
}

/** SWD compares pixels, so the reference images must have the generated images' size and channels. */
function openSwd(b: ImageArray, swdRef: SwdReference, device: Device): SwdDescriptors {
  const ds = swdRef.dataset;
  if (!ds) throw new Error('SWD needs reference images');
  if (b.height !== b.width) throw new Error(`SWD needs square images, got ${b.height}×${b.width}`);
  if (ds.resolution !== b.height || ds.channels !== b.channels)
    throw new Error(
      `SWD compares pixels, so generated (${b.channels}×${b.height}²) and reference (${ds.channels}×${ds.resolution}²) images must have the same size and channels`,
    );
  return new SwdDescriptors(b.height, b.channels, { ...swdRef.options, seed: swdRef.seed, device });
}

function feedBatch(b: ImageArray, uses: readonly NetworkUse[], swd: SwdDescriptors | null, swdLimit: number, device: Device): void {
  scope(() => {
    const x = imageArrayToTensor(b, device);
    for (const u of uses) {
      const f = u.network.features(x);
      u.acc.add(f);
      if (u.kid) u.features.push(keep(f.to('cpu')));
    }
    if (swd && swd.count < swdLimit) swd.add(swd.count + b.count > swdLimit ? x.slice(0, 0, swdLimit - swd.count) : x);
  });
}

function statsFileReference({ path, saved }: StatsFile): Reference {
  const { stats, info, features } = saved;
  return { name: info.dataset, datasetSha256: info.datasetSha256, stats, features, count: stats.count, path, fromCache: false };
}

function datasetReference(ds: ImageDataset, dsSha: string, network: FeatureNetwork, options: ComputeMetricsOptions, batchSize: number, device: Device, log: (line: string) => void): Reference {
  const r = referenceStatistics(ds, network, {
    cacheDir: options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir,
    batchSize,
    device,
    log,
    sha256: dsSha,
    ...(options.kidReferenceFeatures !== undefined ? { kidFeatures: options.kidReferenceFeatures } : {}),
    ...(options.referenceLimit !== undefined ? { limit: options.referenceLimit } : {}),
  });
  return { name: ds.name, ...r };
}

/** Every network's reference is the same data set or file, so later ones rewrite the same name and count. */
function recordReference(into: MetricsReport['reference'], ref: Reference): void {
  into.name = ref.name;
  if (ref.datasetSha256) into.datasetSha256 = ref.datasetSha256;
  if (ref.fromCache) into.source = 'cache';
  if (ref.path) into.statsFiles.push(ref.path);
  into.count = ref.count;
}

/** FD and KID of one network against its reference, whose features are spent (disposed) either way. */
function distanceFigures(use: NetworkUse, ref: Reference, kidOptions: ComputeMetricsOptions['kid'], kidSeed: number): { metrics: MetricsReport['metrics']; notes: string[] } {
  const metrics: MetricsReport['metrics'] = {};
  const notes: string[] = [];
  try {
    if (use.fd) metrics[use.fd] = frechetDistanceParts(use.acc.finalize(), ref.stats).distance;
    if (use.kid) {
      if (!ref.features) throw new Error(`no reference features for ${use.kid}`);
      const gen = cat(use.features, 0);
      try {
        const k: KidResult = kernelInceptionDistance(gen, ref.features, { ...kidOptions, generator: new Generator(kidSeed) });
        metrics[use.kid] = { mean: k.mean, std: k.std, subsets: k.subsets, subsetSize: k.subsetSize };
        if (k.subsetSize < (kidOptions?.subsetSize ?? 1000)) notes.push(`${use.kid}: subsets of ${k.subsetSize} (fewer samples than the default 1000)`);
      } finally {
        gen.dispose();
      }
    }
  } finally {
    ref.features?.dispose();
  }
  return { metrics, notes };
}

/** SWD against a seeded choice of as many reference images as generated ones went in. */
function swdFigure(generated: SwdDescriptors, ds: ImageDataset, swdRef: SwdReference, batchSize: number, device: Device): SwdSummary {
  const n = generated.count;
  const ref = new SwdDescriptors(generated.resolution, generated.channels, { ...swdRef.options, seed: swdRef.seed, device });
  try {
    const idx = subsetIndices(ds.length, n, swdRef.seed);
    for (let s = 0; s < n; s += batchSize) ref.addArray(datasetImages(ds, idx.subarray(s, Math.min(n, s + batchSize))), batchSize);
    const r: SwdResult = swdFromDescriptors(generated, ref, swdRef.options ?? {});
    return { resolutions: r.resolutions, levels: r.levels, mean: r.mean, count: r.count };
  } finally {
    ref.dispose();
  }
}

/** Frees everything computeMetrics opened, whether it returns or throws. */
function disposeAll(statsFile: StatsFile | null, swd: SwdDescriptors | null, uses: readonly NetworkUse[]): void {
  statsFile?.saved.features?.dispose();
  swd?.dispose();
  for (const u of uses) {
    u.acc.dispose();
    for (const t of u.features) t.dispose();
    u.network.dispose();
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
