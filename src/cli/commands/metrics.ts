// `patch-diffusion metrics`: sample-quality figures of a folder/zip of
// generated PNGs against a reference dataset (or cached statistics file).
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { Command, Option } from 'commander';
import { BUILTIN_DATASETS, isBuiltinName, loadDataset } from '../../data/builtin.js';
import { loadFashionMnist } from '../../data/fashion-mnist.js';
import { subsetIndices, withChannels, type ImageDataset } from '../../data/dataset.js';
import { resizeDataset } from '../../data/resize.js';
import { maxThreads, resolveDevice, setNumThreads, type Device } from '../../tensor/index.js';
import { MAX_BATCH, parseIntIn } from '../parse.js';
import { computeMetrics, datasetFeatureStatistics, formatReport, METRIC_NAMES, type MetricName } from '../../metrics/evaluate.js';
import { datasetImages } from '../../metrics/images.js';
import { INCEPTION_PREPROCESSINGS, loadInception, type InceptionPreprocessing } from '../../metrics/inception.js';
import { saveStatistics } from '../../metrics/frechet.js';
import { GRID_FILE } from '../../generate/generate.js';

/** `metrics --save-stats`: the detector's μ and Σ of a set of images, as EDM's `fid.py ref` or pytorch-fid's `--save-stats` write them. */
async function saveImageStatistics(opts: MetricsCliOptions, device: Device, log: (line: string) => void): Promise<void> {
  if (!opts.detector) throw new Error('--save-stats needs --detector (the Inception-v3 weights whose statistics to write)');
  if (!/\.(npz|safetensors)$/i.test(opts.saveStats!)) throw new Error(`--save-stats ${opts.saveStats}: the file must end in .npz or .safetensors`);
  const ds = await openGenerated(opts.images, log);
  const n = opts.num !== undefined ? Math.min(opts.num, ds.length) : ds.length;
  const net = loadInception(opts.detector, { device, ...(opts.detectorPreprocessing ? { preprocessing: opts.detectorPreprocessing } : {}) });
  try {
    const stats = datasetFeatureStatistics(ds, n, net, {
      batchSize: opts.batch ?? 32,
      device,
      log: (done, seconds) => log(`statistics: ${done}/${n} images, ${seconds.toFixed(0)} s`),
    });
    saveStatistics(opts.saveStats!, stats, { featureNetwork: net.name, featureNetworkSha256: net.sha256, dataset: opts.images, preprocessing: net.preprocessing });
    console.log(`wrote ${net.name} statistics of ${n} images (${net.preprocessing}) to ${opts.saveStats}`);
  } finally {
    net.dispose();
  }
}

/** Short names accepted by --metrics. */
const ALIASES: Record<string, MetricName[]> = {
  fd: ['fd-classifier'],
  kid: ['kid-classifier'],
  swd: ['swd'],
  fid: ['fid-inception'],
  'kid-inception': ['kid-inception'],
  inception: ['fid-inception', 'kid-inception'],
  all: ['fd-classifier', 'kid-classifier', 'swd'],
};

export function parseMetricList(list: string, haveDetector: boolean): MetricName[] {
  const out = new Set<MetricName>();
  for (const name of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const names = ALIASES[name] ?? ((METRIC_NAMES as readonly string[]).includes(name) ? [name as MetricName] : null);
    if (!names) throw new Error(`unknown metric '${name}'; use ${[...Object.keys(ALIASES), ...METRIC_NAMES].join(', ')}`);
    for (const n of names) out.add(n);
  }
  if (haveDetector && list.split(',').some((s) => s.trim() === 'all')) out.add('fid-inception');
  if (out.size === 0) throw new Error('--metrics is empty');
  return [...out];
}

/**
 * The generated images: a folder `generate` wrote holds its overview grid beside the samples, which is no sample
 * (and another size); it is left out, with a note.
 */
async function openGenerated(spec: string, log: (line: string) => void): Promise<ImageDataset> {
  const grid = join(spec, GRID_FILE);
  if (!existsSync(grid)) return openDataset(spec, { labels: false });
  log(`leaving out ${grid}: generate's overview grid, not a sample`);
  return openDataset(spec, { labels: false, filter: (rel) => rel !== GRID_FILE });
}

/** A dataset by name or path: built-ins, 'fashion-mnist-test', or a folder/zip of images. */
async function openDataset(spec: string, options: { resolution?: number; channels?: 1 | 3; labels?: boolean; filter?: (relPath: string) => boolean }): Promise<ImageDataset> {
  if (spec === 'fashion-mnist-test') {
    // The test split is not a built-in of the data layer; load it here at the wanted geometry.
    let ds = await loadFashionMnist({ split: 'test', resolution: options.resolution === 28 ? 28 : 32, labels: false });
    if (options.resolution !== undefined && options.resolution !== ds.resolution) ds = await resizeDataset(ds, options.resolution);
    return options.channels ? withChannels(ds, options.channels) : ds;
  }
  return loadDataset(spec, { labels: options.labels ?? false, resolution: options.resolution, channels: options.channels, filter: options.filter });
}

interface MetricsCliOptions {
  images: string;
  ref?: string;
  saveStats?: string;
  detectorPreprocessing?: InceptionPreprocessing;
  metrics?: string;
  detector?: string;
  classifier?: string;
  num?: number;
  seed: number;
  out?: string;
  cacheDir?: string;
  cache: boolean;
  device?: string;
  batch?: number;
  refLimit?: number;
  kidSubsets?: number;
  kidSubsetSize?: number;
  threads?: number;
  quiet?: boolean;
}

// Each count has a range: 0 subsets or a batch of 0 is an error, not a silent default.
const count = (max: number) => parseIntIn(1, max);

export function metricsCommand(): Command {
  return new Command('metrics')
    .description(
      'sample-quality metrics of generated images against a reference: Fréchet / KID distance in the shipped ' +
        'Fashion-MNIST classifier\'s features (fd, kid), ProGAN sliced Wasserstein distance (swd), and FID/KID with ' +
        'user-supplied Inception-v3 weights (fid, kid-inception)',
    )
    .requiredOption('--images <path>', 'generated images: a folder or .zip of PNG/JPEG files (or a built-in dataset name, for baselines)')
    .option('--ref <spec>', `reference: built-in name (${[...Object.keys(BUILTIN_DATASETS), 'fashion-mnist-test'].join(', ')}), folder/zip of images, a statistics .safetensors file, or EDM's / pytorch-fid's FID statistics .npz`)
    .option('--save-stats <file>', 'instead of comparing: write the Inception statistics (mu, sigma) of --images to FILE (.npz as EDM\'s fid.py ref and pytorch-fid --save-stats, or .safetensors); needs --detector')
    .option('--metrics <list>', 'comma-separated: fd, kid, swd, fid, kid-inception, all (default fd,kid,swd, plus fid with --detector)')
    .option('--detector <file>', 'FID Inception-v3 weights: pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth as distributed, or safetensors with the same names (see src/metrics/inception.ts)')
    .addOption(new Option('--detector-preprocessing <p>', 'how images are resized and scaled for the detector: pytorch-fid (default for a .pth) or tf1 (EDM/torch-fidelity style; default for safetensors)').choices(INCEPTION_PREPROCESSINGS))
    .option('--classifier <file>', 'classifier weights (default: the shipped models/fashion-mnist-classifier.safetensors)')
    .option('--num <n>', 'use the first N generated images (file order: seeds 0..N−1 of generate); of a built-in data set (a baseline), a seeded subset of N (--seed)', count(100_000_000))
    .option('--seed <s>', 'seed of KID subsets, SWD positions/directions and the SWD reference subset', parseIntIn(0, 2 ** 32 - 1), 0)
    .option('--out <file>', 'append the figures as one JSON line to this file')
    .option('--cache-dir <dir>', 'where reference statistics are cached (default ~/.cache/patch-diffusion/metrics)')
    .option('--no-cache', 'do not read or write cached reference statistics')
    .option('--device <d>', 'cpu, cuda, cuda:N or auto', 'auto')
    .option('--batch <n>', 'images per forward pass', count(MAX_BATCH))
    .option('--ref-limit <n>', 'reference statistics from a seeded subset of N images (default: all)', count(100_000_000))
    .option('--kid-subsets <n>', 'KID subsets (default 100)', count(100_000))
    .option('--kid-subset-size <n>', 'KID subset size (default 1000)', count(1_000_000))
    .addOption(new Option('--threads <n>', 'CPU threads (default: all cores)').argParser(parseIntIn(1, maxThreads())))
    .option('--quiet', 'no progress lines on stderr')
    .action(async (opts: MetricsCliOptions) => {
      setNumThreads(opts.threads || availableParallelism());
      const device = resolveDevice(opts.device);
      const log = opts.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
      if (opts.saveStats) {
        await saveImageStatistics(opts, device, log);
        return;
      }
      if (!opts.ref) throw new Error('metrics: --ref is required (or --save-stats FILE to write the statistics of --images)');
      const metrics = parseMetricList(opts.metrics ?? (opts.detector ? 'fd,kid,swd,fid' : 'fd,kid,swd'), opts.detector !== undefined);

      log(`reading generated images from ${opts.images}`);
      const gen = await openGenerated(opts.images, log);
      const n = opts.num !== undefined ? Math.min(opts.num, gen.length) : gen.length;
      if (opts.num !== undefined && opts.num > gen.length) log(`warning: --num ${opts.num} but only ${gen.length} images in ${opts.images}`);
      // Generated files are in seed order, so the first N are seeds 0..N−1. A data set's file order is its own
      // (emoji's first 500 are all faces): a baseline takes a seeded subset instead.
      const baselineSubset = (isBuiltinName(opts.images) || opts.images === 'fashion-mnist-test') && n < gen.length;
      const rows = baselineSubset ? subsetIndices(gen.length, n, opts.seed) : Array.from({ length: n }, (_, i) => i);
      if (baselineSubset) log(`a seeded subset (seed ${opts.seed}) of ${n} of the ${gen.length} images of ${opts.images}`);
      const generated = datasetImages(gen, rows);

      const statsFile = /\.(safetensors|npz)$/i.test(opts.ref);
      let reference: ImageDataset | string = opts.ref;
      if (!statsFile) {
        log(`loading reference ${opts.ref}`);
        reference = await openDataset(opts.ref, { resolution: gen.resolution, channels: gen.channels });
      }
      const report = await computeMetrics({
        generated,
        reference,
        metrics,
        seed: opts.seed,
        device,
        log,
        cacheDir: opts.cache ? (opts.cacheDir ?? undefined) : null,
        ...(opts.detector ? { detectorPath: opts.detector } : {}),
        ...(opts.detectorPreprocessing ? { detectorPreprocessing: opts.detectorPreprocessing } : {}),
        ...(opts.classifier ? { classifierPath: opts.classifier } : {}),
        ...(opts.batch ? { batchSize: opts.batch } : {}),
        ...(opts.refLimit ? { referenceLimit: opts.refLimit } : {}),
        kid: { ...(opts.kidSubsets ? { subsets: opts.kidSubsets } : {}), ...(opts.kidSubsetSize ? { subsetSize: opts.kidSubsetSize } : {}) },
      });
      console.log(formatReport(report));
      if (opts.out) {
        appendFileSync(opts.out, `${JSON.stringify({ time: new Date().toISOString(), images: opts.images, ref: opts.ref, ...report })}\n`);
        log(`appended to ${opts.out}`);
      }
    });
}
