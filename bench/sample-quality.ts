// Sample quality of a snapshot (or of real images, for the floor): N samples
// from the EMA network on seeds 0..N−1 with the Heun sampler, quantised as the
// written PNGs, then Fréchet distance and KID in the shipped Fashion-MNIST
// classifier's features and SWD against a reference set (FID too, with Inception weights). Shared by
// quality-budget.ts and quality-study.ts; each runs it in a child process.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadDataset } from '../src/data/index.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { hwcToChw, subsetIndices, type ImageDataset } from '../src/data/dataset.js';
import { FASHION_MNIST_5K_SEED, FASHION_MNIST_SUBSETS } from '../src/data/builtin.js';
import { generateImages, seedBatches, toUint8 } from '../src/diffusion/sampler.js';
import { loadSnapshotNetwork } from '../src/model/load-network.js';
import { writeImageGrid } from '../src/io/images.js';
import { computeMetrics, formatReport, type MetricName, type MetricsReport } from '../src/metrics/evaluate.js';
import { datasetImages, type ImageArray } from '../src/metrics/images.js';
import { noGrad, resolveDevice, setNumThreads, zerosLike } from '../src/tensor/index.js';
import { peakRssMb } from './common.js';

export const METRICS = ['fd-classifier', 'kid-classifier', 'swd'] as const;

export interface EvalCfg {
  mode: 'eval';
  label: string;
  /** A snapshot to sample from, or a real-data source ('fashion-mnist-test' or a dataset name) to measure as is. */
  snapshot?: string;
  real?: string;
  samples: number;
  steps: number;
  batch: number;
  ref: string;
  metricsSeed: number;
  gridPath?: string;
  threads: number;
  device: string;
  /** Feed zeros in the coordinate channels (a network trained with --mask-pos). */
  maskPos?: boolean;
  /** Which metrics (default the three of METRICS). */
  metrics?: readonly MetricName[];
  /** Inception-v3 weights, for fid-inception / kid-inception. */
  detector?: string;
}
export interface EvalResult {
  label: string;
  samples: number;
  seeds: string;
  samplingSec: number;
  samplingPerSec: number;
  gridPath: string | null;
  report: MetricsReport;
  reportText: string;
  peakRssMb: number;
  loadStart: number[];
  loadEnd: number[];
}

/** Real-image sources beyond the data sets' names (Fashion-MNIST, 32×32 grey, unlabelled). */
const REAL_SOURCES = ['fashion-mnist-test', 'fashion-mnist-outside-5k'];

/**
 * Real images by name, unlabelled: 'fashion-mnist-test' (the test split's 10,000), 'fashion-mnist-outside-5k'
 * (the train split's 55,000 outside fashion-mnist-5k, so outside its nested -2k and -500 too: never trained on by
 * them, and not the held-out test split either), or any data set loadDataset reads.
 */
export async function loadRealSource(spec: string): Promise<ImageDataset> {
  if (spec === 'fashion-mnist-test') return loadFashionMnist({ split: 'test', labels: false });
  if (spec !== 'fashion-mnist-outside-5k') return loadDataset(spec, { labels: false });
  const train = await loadFashionMnist({ split: 'train', labels: false });
  const inside = new Set(subsetIndices(train.length, FASHION_MNIST_SUBSETS['fashion-mnist-5k'], FASHION_MNIST_5K_SEED));
  const keep = Uint32Array.from({ length: train.length }, (_, i) => i).filter((i) => !inside.has(i));
  return {
    name: spec, length: keep.length, resolution: train.resolution, channels: train.channels, labelDim: 0,
    image: (i) => train.image(keep[i]!), label: () => null, ...(train.notice !== undefined ? { notice: train.notice } : {}),
  };
}

/** Samples (or reads real images) and measures them; also returns the images for further checks. */
export async function evaluateSamples(cfg: EvalCfg, keepImages = false): Promise<EvalResult & { images?: ImageArray }> {
  const loadStart = loadavg();
  setNumThreads(cfg.threads);
  const device = resolveDevice(cfg.device);
  let generated: ImageArray;
  let samplingSec = 0;
  let gridPath: string | null = null;
  let seeds: string;
  if (cfg.snapshot) {
    const { net, info } = loadSnapshotNetwork(cfg.snapshot, device);
    const R = info.dataset.resolution, C = net.outChannels;
    if (C !== 1 && C !== 3) throw new Error(`${C}-channel network: cannot measure images`);
    const size = C * R * R;
    const data = new Uint8Array(cfg.samples * size);
    const gridCount = Math.min(64, cfg.samples);
    const gridData = new Uint8Array(gridCount * size);
    const all = Array.from({ length: cfg.samples }, (_, k) => k);
    const t0 = performance.now();
    let at = 0;
    for (const chunk of seedBatches(all, cfg.batch)) {
      const batch = noGrad(() => {
        const { images } = generateImages((x, s, pos) => net.forward(x, s, net.positionChannels ? (cfg.maskPos ? zerosLike(pos!) : pos) : null, null), { seeds: chunk, channels: C, resolution: R, numSteps: cfg.steps, device });
        try {
          return toUint8(images); // the official quantisation, NHWC
        } finally {
          images.dispose();
        }
      });
      for (let k = 0; k < chunk.length; k++, at++) {
        const hwc = batch.data.subarray(k * size, (k + 1) * size);
        hwcToChw(hwc, C, R, R, data.subarray(at * size, (at + 1) * size));
        if (at < gridCount) gridData.set(hwc, at * size);
      }
      if (at % (cfg.batch * 4) === 0 || at === cfg.samples) console.log(`${cfg.label}: ${at}/${cfg.samples} samples, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    samplingSec = (performance.now() - t0) / 1000;
    net.dispose();
    generated = { data, count: cfg.samples, channels: C, height: R, width: R };
    if (cfg.gridPath) {
      await writeImageGrid(cfg.gridPath, { data: gridData, count: gridCount, height: R, width: R, channels: C as 1 | 3 });
      gridPath = cfg.gridPath;
    }
    seeds = `0-${cfg.samples - 1}`;
  } else if (cfg.real) {
    const src = await loadRealSource(cfg.real);
    if (cfg.samples > src.length) throw new Error(`${cfg.real} has only ${src.length} images, fewer than --samples ${cfg.samples}`);
    generated = datasetImages(src, subsetIndices(src.length, cfg.samples, 0));
    seeds = `seeded subset (seed 0) of ${src.length}`;
  } else throw new Error('eval child: give a snapshot or a real-data source');

  const reference = REAL_SOURCES.includes(cfg.ref) ? await loadRealSource(cfg.ref) : await loadDataset(cfg.ref, { labels: false, resolution: generated.height, channels: generated.channels as 1 | 3 });
  const report = await computeMetrics({
    generated, reference, metrics: [...(cfg.metrics ?? METRICS)], seed: cfg.metricsSeed, device, ...(cfg.detector ? { detectorPath: cfg.detector } : {}),
    log: (line) => console.log(`${cfg.label}: ${line}`),
  });
  return {
    label: cfg.label,
    samples: cfg.samples,
    seeds,
    samplingSec,
    samplingPerSec: samplingSec ? cfg.samples / samplingSec : NaN,
    gridPath,
    report,
    reportText: formatReport(report),
    peakRssMb: peakRssMb(),
    loadStart,
    loadEnd: loadavg(),
    ...(keepImages ? { images: generated } : {}),
  };
}

