// Does Patch Diffusion pay off here? Sample quality against wall-clock time,
// for several configurations trained side by side, until the curves settle.
//
// The study lives in one folder (--study DIR) and can be stopped and
// continued at any time, by this session or a later one: study.json
// (quality-study-record.ts) holds every configuration's run directory and the
// quality measured after each segment. Each round trains one selected
// configuration, the least trained, for --segment-minutes (a child process
// that resumes the run exactly), then samples --samples images from its EMA
// snapshot and measures FD / KID (Fashion-MNIST classifier features) and SWD
// against the reference set, plus the nearest-training-image distances
// (memorisation). After every segment the plots are redrawn: FD, KID and SWD
// against training minutes and against kimg, one curve per configuration,
// with the floor of real images. Two commands advancing different
// configurations (say at --threads 1 each) can share one folder.
//
// The minutes axis is the quiet machine's: each point's kimg divided by the
// configuration's training throughput, measured side by side on a quiet
// machine (--calibrate, A B C … C B A, before the first segment of a new
// configuration; a later one beside an anchor calibrated before, to take out
// the machine's drift). A segment is a fixed number of kimg. A run's own
// clock counts every minute another process took from it (2 threads on 2
// cores slow 3× under one competing process), so the study can go on while
// the machine is shared, and its curves stay comparable. A progressive
// schedule's speed changes with its patch size: it is calibrated per size,
// and its segments run on its own clock. The own clock is kept in the record.
//
//   node dist/bench/quality-study.js --study DIR [--configs fm-p1,fm-p0.5,fm-p0.25] [--segment-minutes 5]
//        [--until-minutes 60] [--hours H] [--samples 500] [--sample-steps 18] [--threads 2]
//        [--calibrate] [--calibrate-minutes 1.5] [--list]
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadDataset } from '../src/data/index.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { chwToHwc, subsetIndices, type ImageDataset } from '../src/data/dataset.js';
import { writeImageGrid } from '../src/io/images.js';
import { computeMetrics } from '../src/metrics/evaluate.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { writeLinePlot, type Series } from '../src/io/plot.js';
import { loadClassifier } from '../src/metrics/classifier.js';
import { datasetImages, type ImageArray } from '../src/metrics/images.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { train } from '../src/train/train.js';
import { resolveDevice, setNumThreads } from '../src/tensor/index.js';
import { benchMain, childConfig, formatMachine, fx, machineInfo, median, nowIso, opt, parseOptions, positiveInt, runAsChild, runChild, UsageError, type OptionSpec } from './common.js';
import { classShares, predictDataset, predictImages, totalVariation } from './class-shares.js';
import { memorisation, nearestTraining, type MemorisationReport } from './nearest-neighbours.js';
import { evaluateSamples, loadRealSource } from './sample-quality.js';
import { CONFIGS, configById, type StudyConfig } from './quality-study-configs.js';
import {
  calibrationId, calibrationOf, idleMinutes, metricAt, minutesToReach, readStudy, saveStudy, scheduleDone, trainedMinutes,
  progressiveMinutes, progressiveSchedule, type Calibration, type Ownership, type Study,
} from './quality-study-record.js';

const SCRIPT = fileURLToPath(import.meta.url);

/**
 * The configuration a later calibration is measured beside: calibrated first, with turns 2% apart, and fast
 * enough (1-kimg ticks of 5 s) to give many ticks in a short turn.
 */
const ANCHORS = ['fm-p0.25'];
/**
 * A progressive configuration's calibration lays its schedule over this many kimg: R/4 and R/2 take the first
 * minute here, and R the rest of the turn.
 */
const PROGRESSIVE_CALIBRATION_KIMG = 20;

// ---- children -------------------------------------------------------------------------------------------

interface SegmentCfg {
  mode: 'segment';
  config: StudyConfig;
  runsDir: string;
  runDir: string | null;
  minutes: number;
  /** Train this many kimg more (a calibrated configuration: the segment is a fixed amount of work, whatever the load). */
  segmentKimg: number | null;
  threads: number;
}
interface SegmentResult {
  runDir: string;
  snapshot: string;
  minutes: number;
  kimg: number;
}

/** A new run of the configuration: the `small` network, snapshots only when the process stops (and the loop's first). */
function newRunOptions(config: StudyConfig, runsDir: string, desc: string) {
  return { data: config.data, arch: 'small', outdir: runsDir, desc, snap: 1_000_000, dump: 1_000_000, gridSeeds: 16, ...config.train } as const;
}

/** The run's own clock and counter, from the last training state in its directory. */
function runCounters(runDir: string): { elapsedSec: number; curNimg: number } {
  const states = readdirSync(runDir).filter((f) => /^training-state-\d{6}\.safetensors$/.test(f)).sort();
  if (!states.length) throw new Error(`${runDir}: no training state`);
  const { tensors, metadata } = readSafetensors(join(runDir, states.at(-1)!));
  for (const t of tensors.values()) t.dispose();
  return JSON.parse(metadata.loop!) as { elapsedSec: number; curNimg: number };
}

/**
 * Trains one configuration further (a new run, or its run resumed exactly): `segmentKimg` more when calibrated
 * (the duration only ends the loop: the stochastic patch schedule does not depend on it), else for `minutes` of its clock.
 */
async function segmentChild(c: SegmentCfg): Promise<SegmentResult> {
  const startKimg = c.runDir ? runCounters(c.runDir).curNimg / 1000 : 0;
  // A progressive run keeps its configured duration: its schedule is laid out over it.
  const duration = c.segmentKimg !== null ? (startKimg + c.segmentKimg) / 1000 : ((c.config.train.duration as number | undefined) ?? 1000);
  // With a kimg target the clock is only a safety stop (a machine 5× slower than calibrated still ends the segment).
  const common = { threads: c.threads, device: 'cpu', maxMinutes: c.segmentKimg !== null ? 5 * c.minutes : c.minutes, quiet: true, duration } as const;
  const result = c.runDir
    ? await train({ resume: c.runDir, ...common })
    : // Each segment is measured once, at its stop.
      await train({ ...newRunOptions(c.config, c.runsDir, c.config.id), ...common });
  if (!result?.lastSnapshot) throw new Error(`${c.config.id}: the segment wrote no snapshot`);
  const loop = runCounters(result.runDir);
  return { runDir: result.runDir, snapshot: result.lastSnapshot, minutes: loop.elapsedSec / 60, kimg: loop.curNimg / 1000 };
}

interface CalibrateCfg {
  mode: 'calibrate';
  config: StudyConfig;
  runsDir: string;
  minutes: number;
  threads: number;
}

/** One tick of a calibration run (1 kimg at 32×32): its speed, and the patch size it trained (a progressive run's). */
interface CalibrationTick {
  imagesPerSec: number;
  patchSize: number | null;
}

/**
 * Trains a throw-away run of the configuration for `minutes` and returns its ticks after the first. A
 * progressive configuration lays its schedule over PROGRESSIVE_CALIBRATION_KIMG, so every patch size gets
 * ticks; a tick that spans a change of size is left out.
 */
async function calibrateChild(c: CalibrateCfg): Promise<CalibrationTick[]> {
  const progressive = c.config.train.progressive === true;
  const duration = progressive ? PROGRESSIVE_CALIBRATION_KIMG / 1000 : 1000;
  const result = await train({
    ...newRunOptions(c.config, c.runsDir, `calibrate-${c.config.id}`), duration, tick: c.config.calibrationTickKimg, threads: c.threads, device: 'cpu', maxMinutes: c.minutes, quiet: true,
  });
  if (!result) throw new Error(`${c.config.id}: the calibration run did not start`);
  const stats = readFileSync(join(result.runDir, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  rmSync(result.runDir, { recursive: true, force: true });
  const schedule = progressive ? progressiveSchedule(c.config) : null;
  const sizeAt = (kimg: number) => schedule!.progressiveSize(Math.floor(kimg * 1000), duration * 1e6);
  // The first tick holds the warm-up and the first snapshot's grid; the last one is cut short by the stop.
  const ticks = stats.slice(1, -1).flatMap((t, i): CalibrationTick[] => {
    if (!schedule) return [{ imagesPerSec: t['Timing/images_per_sec']!, patchSize: null }];
    const from = stats[i]!['Progress/kimg']!, to = t['Progress/kimg']!;
    const size = sizeAt(from);
    return sizeAt(to - 0.001) === size ? [{ imagesPerSec: t['Timing/images_per_sec']!, patchSize: size }] : [];
  });
  if (ticks.length < 2) throw new Error(`${c.config.id}: only ${ticks.length} whole ticks in ${c.minutes} calibration minutes; raise --calibrate-minutes`);
  return ticks;
}

interface MeasureCfg {
  mode: 'measure';
  config: StudyConfig;
  snapshot: string | null;
  samples: number;
  steps: number;
  threads: number;
  gridPath?: string;
  /** A small set's: where the grid of samples beside their nearest training images goes. */
  nearestGridPath?: string;
  /** Inception-v3 weights: fid-inception joins the configuration's metrics. */
  detector?: string;
}
interface MeasureResult {
  metrics: Record<string, number>;
  memorisation: MemorisationReport | null;
  samplingSec: number;
  /** A small set's: the classifier's class shares of the samples (CLASSES' order). */
  classShares?: number[];
}

/** Samples the snapshot (or reads held-out real images: the floor) and measures quality and memorisation. */
async function measureChild(c: MeasureCfg): Promise<MeasureResult> {
  if (c.config.smallSet) return measureSmallSet(c);
  setNumThreads(c.threads);
  const device = resolveDevice('cpu');
  const real = c.snapshot ? undefined : c.config.heldOut;
  const e = await evaluateSamples(
    {
      mode: 'eval', label: c.config.id, snapshot: c.snapshot ?? undefined, real, samples: c.samples, steps: c.steps, batch: 64, ref: c.config.ref,
      metricsSeed: 0, threads: c.threads, device, maskPos: c.config.train.maskPos === true, gridPath: c.gridPath,
      metrics: [...c.config.metrics, ...(c.detector ? (['fid-inception'] as const) : [])], ...(c.detector ? { detector: c.detector } : {}),
    },
    true,
  );
  const metrics: Record<string, number> = {};
  const r = e.report.metrics;
  if (r['fd-classifier'] !== undefined) metrics['fd-classifier'] = r['fd-classifier'];
  if (r['kid-classifier']) metrics['kid-classifier'] = r['kid-classifier'].mean;
  if (r.swd) metrics.swd = r.swd.mean;
  if (r['fid-inception'] !== undefined) metrics['fid-inception'] = r['fid-inception'];
  let mem: MemorisationReport | null = null;
  if (c.snapshot && e.images) {
    // Against the training images; held-out real images give the distances of images that are not copies.
    const training = await loadDataset(c.config.data, { labels: false });
    const heldSrc = c.config.heldOut === 'fashion-mnist-test' ? await loadFashionMnist({ split: 'test', labels: false }) : await loadDataset(c.config.heldOut, { labels: false });
    const heldOut = datasetImages(heldSrc, subsetIndices(heldSrc.length, Math.min(c.samples, heldSrc.length), 1));
    const classifier = c.config.metrics.includes('fd-classifier') ? loadClassifier(undefined, { device }) : null;
    try {
      mem = memorisation(e.images, heldOut, training, { device, features: classifier });
    } finally {
      classifier?.dispose();
    }
  }
  return { metrics, memorisation: mem, samplingSec: e.samplingSec };
}

/** Samples shown beside their nearest training images: the first seeds, then the samples nearest to a training image. */
const NEAREST_GRID = { first: 24, closest: 24, pairsPerRow: 6 };

/**
 * A small set's measurement (issue 30): FD / KID / SWD against the held-out images (`-heldout`), FD against the
 * training set itself (`fd-train`), the class shares against the training set's (`class-tv`: both by the
 * classifier's predictions, as bench/class-balance), the nearest-training-image distances (`nn-…-median`) and the
 * close-copy shares: samples nearer a training image than the held-out images' 5th percentile (`close-copies-…`;
 * real images that are not copies give about 5%). The floor (no snapshot) measures real images outside the
 * training and held-out sets the same way. With `nearestGridPath`, a grid of samples beside their nearest training images.
 */
async function measureSmallSet(c: MeasureCfg): Promise<MeasureResult> {
  setNumThreads(c.threads);
  const device = resolveDevice('cpu');
  const real = c.snapshot ? undefined : (c.config.floorSource ?? c.config.heldOut);
  const e = await evaluateSamples(
    {
      mode: 'eval', label: c.config.id, snapshot: c.snapshot ?? undefined, real, samples: c.samples, steps: c.steps, batch: 64, ref: c.config.ref,
      metricsSeed: 0, threads: c.threads, device, gridPath: c.gridPath,
      metrics: [...c.config.metrics, ...(c.detector ? (['fid-inception'] as const) : [])], ...(c.detector ? { detector: c.detector } : {}),
    },
    true,
  );
  const images = e.images!;
  const metrics: Record<string, number> = {};
  const r = e.report.metrics;
  if (r['fd-classifier'] !== undefined) metrics['fd-heldout'] = r['fd-classifier'];
  if (r['kid-classifier']) metrics['kid-heldout'] = r['kid-classifier'].mean;
  if (r.swd) metrics['swd-heldout'] = r.swd.mean;
  if (r['fid-inception'] !== undefined) metrics['fid-inception-heldout'] = r['fid-inception'];
  const training = await loadDataset(c.config.data, { labels: false });
  const toTrain = await computeMetrics({ generated: images, reference: training, metrics: ['fd-classifier'], seed: 0, device, log: (line) => console.log(`${c.config.id} (against the training set): ${line}`) });
  metrics['fd-train'] = toTrain.metrics['fd-classifier']!;
  const heldSrc = await loadRealSource(c.config.heldOut);
  const heldOut = datasetImages(heldSrc, subsetIndices(heldSrc.length, Math.min(c.samples, heldSrc.length), 1));
  const classifier = loadClassifier(undefined, { device });
  let mem: MemorisationReport, shares: number[];
  try {
    shares = classShares(predictImages(images, classifier));
    metrics['class-tv'] = totalVariation(shares, classShares(predictDataset(training, classifier)));
    mem = memorisation(images, heldOut, training, { device, features: classifier });
  } finally {
    classifier.dispose();
  }
  metrics['nn-pixels-median'] = mem.pixels.samples.median;
  metrics['nn-features-median'] = mem.features!.samples.median;
  metrics['close-copies-pixels'] = mem.pixels.samples.closeShare;
  metrics['close-copies-features'] = mem.features!.samples.closeShare;
  if (c.nearestGridPath) await writeNearestGrid(c.nearestGridPath, images, training, device);
  return { metrics, memorisation: mem, samplingSec: e.samplingSec, classShares: shares };
}

/**
 * Pairs of (sample, its nearest training image in pixels) with a white gap after each, NEAREST_GRID.pairsPerRow
 * a row: the first samples (seeds 0, 1, …: what the model draws), then the samples nearest to a training image
 * (the likeliest copies), nearest first.
 */
async function writeNearestGrid(path: string, images: ImageArray, training: ImageDataset, device: ReturnType<typeof resolveDevice>): Promise<void> {
  const { index, distance } = nearestTraining(images, training, { device });
  const byDistance = Array.from(index.keys()).sort((a, b) => distance[a]! - distance[b]!);
  const first = Array.from({ length: Math.min(NEAREST_GRID.first, images.count) }, (_, k) => k);
  const shown = [...first, ...byDistance.slice(0, NEAREST_GRID.closest)];
  const { channels: C, height: H, width: W } = images;
  const size = C * H * W;
  const data = new Uint8Array(shown.length * 3 * size).fill(255);
  shown.forEach((k, j) => {
    data.set(chwToHwc(images.data.subarray(k * size, (k + 1) * size), C, W, H), 3 * j * size);
    data.set(chwToHwc(training.image(index[k]!), C, W, H), (3 * j + 1) * size);
  });
  await writeImageGrid(path, { data, count: shown.length * 3, height: H, width: W, channels: C as 1 | 3 }, { columns: NEAREST_GRID.pairsPerRow * 3, scale: 3 });
}

// ---- plots and the summary ----------------------------------------------------------------------------

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/**
 * The plots: one set per group, each small enough to read (a file-name suffix; the main comparison has none).
 * The second seeds share the main plot with their first, in the same colour family.
 */
const PLOT_GROUPS: { suffix: string; what: string; ids: string[] }[] = [
  { suffix: '', what: 'real_p 1, 0.5, 0.25', ids: ['fm-p1', 'fm-p0.5', 'fm-p0.25', 'fm-p1-s1', 'fm-p1-s1-long', 'fm-p0.5-s1', 'fm-p0.5-s1-long', 'fm-p0.25-s1', 'emoji-p1', 'emoji-p0.5', 'emoji-p0.25'] },
  { suffix: '-real-p', what: 'real_p sensitivity', ids: ['fm-p1', 'fm-p0.75', 'fm-p0.75-long', 'fm-p0.5', 'fm-p0.25', 'fm-p0.1'] },
  { suffix: '-ablations', what: 'coordinates, schedule', ids: ['fm-p1', 'fm-p1-s1-long', 'fm-p0.5', 'fm-p0.5-s1', 'fm-p0.5-nopos', 'fm-p0.5-nopos-s1', 'fm-p0.5-prog', 'fm-p0.5-prog155', 'fm-p0.5-prog155-s1'] },
];
/** One colour per configuration in every plot; a second seed is a lighter shade of its first. */
const COLOURS: Record<string, string> = {
  'fm-p1': '#1f77b4', 'fm-p0.5': '#d62728', 'fm-p0.25': '#2ca02c', 'fm-p1-s1': '#6baed6', 'fm-p0.5-s1': '#fc9272', 'fm-p0.25-s1': '#a1d99b',
  'fm-p0.75': '#9467bd', 'fm-p0.1': '#ff7f0e', 'fm-p0.5-nopos': '#8c564b', 'fm-p0.5-prog': '#e377c2',
  'fm-p0.75-long': '#c5b0d5', 'fm-p0.5-nopos-s1': '#c49c94', 'fm-p0.5-prog155': '#7b4173', 'fm-p0.5-prog155-s1': '#ce6dbd', 'fm-p1-s1-long': '#9ecae1', 'fm-p0.5-s1-long': '#fdae6b',
  'emoji-p1': '#1f77b4', 'emoji-p0.5': '#d62728', 'emoji-p0.25': '#2ca02c',
};

/** A configuration's colour: its own, else its fashion-mnist-5k counterpart's (fm500-p0.5-s1 as fm-p0.5-s1). */
const colourOf = (id: string): string | undefined => COLOURS[id] ?? COLOURS[id.replace(/^fm(500|2k)-/, 'fm-')];

/** The small-set study's plots (issue 30): per set, each of these against epochs and against quiet-machine minutes. */
const SMALL_SET_PLOTS: { metric: string; what: string }[] = [
  { metric: 'fd-heldout', what: 'FD against the held-out test split' },
  { metric: 'fd-train', what: 'FD against the training set' },
  { metric: 'close-copies-pixels', what: 'close-copy share (pixels)' },
  { metric: 'close-copies-features', what: 'close-copy share (classifier features)' },
  { metric: 'class-tv', what: 'class proportions: TV distance from the training set' },
];

/** Epochs of a small-set point: passes over the training images (kimg counts patch samples, as the official counter). */
const epochsOf = (c: StudyConfig, kimg: number): number => (kimg * 1000) / c.smallSet!.images;

async function drawSmallSetPlots(dir: string, study: Study): Promise<string[]> {
  const written: string[] = [];
  const measured = CONFIGS.filter((c) => c.smallSet && study.configs[c.id]?.points.length);
  for (const data of new Set(measured.map((c) => c.data))) {
    const configs = measured.filter((c) => c.data === data);
    const floor = study.floors[data];
    for (const { metric, what } of SMALL_SET_PLOTS) {
      for (const axis of ['epochs', 'minutes'] as const) {
        const series: Series[] = configs.map((c, k) => ({
          label: c.id,
          color: colourOf(c.id) ?? PALETTE[k % PALETTE.length],
          x: study.configs[c.id]!.points.map((p) => (axis === 'minutes' ? idleMinutes(study, c.id, p) : epochsOf(c, p.kimg))),
          y: study.configs[c.id]!.points.map((p) => p.metrics[metric] ?? NaN),
        }));
        const level = floor?.metrics[metric];
        if (level !== undefined) {
          const xs = series.flatMap((s) => s.x);
          series.push({ label: `real images never trained on (${floor!.samples})`, color: '#000000', x: [Math.min(...xs), Math.max(...xs)], y: [level, level] });
        }
        const file = join(dir, `${data}-${metric}-vs-${axis}.png`);
        await writeLinePlot(file, series, {
          title: `${data}: ${what} (${study.settings.samples} samples, EMA)`,
          xLabel: axis === 'minutes' ? 'training minutes on the quiet machine (kimg ÷ measured images/s)' : 'epochs (kimg × 1000 ÷ training images)',
          yLabel: metric,
        });
        written.push(file);
      }
    }
  }
  return written;
}

async function drawPlots(dir: string, study: Study): Promise<string[]> {
  const written: string[] = [];
  const groups: { name: string; what: string; data: string; configs: StudyConfig[] }[] = [];
  for (const g of PLOT_GROUPS) {
    const measured = g.ids.map((id) => configById(id)!).filter((c) => study.configs[c.id]?.points.length);
    // A group is drawn once it shows something the others do not.
    for (const data of new Set(measured.map((c) => c.data))) {
      const configs = measured.filter((c) => c.data === data);
      if (g.suffix && configs.every((c) => PLOT_GROUPS[0]!.ids.includes(c.id))) continue;
      groups.push({ name: `${data}${g.suffix}`, what: g.what, data, configs });
    }
  }
  for (const { name, what, data, configs } of groups) {
    for (const metric of measuredMetrics(study, configs)) {
      for (const axis of ['minutes', 'kimg'] as const) {
        const series: Series[] = configs.map((c, k) => ({
          label: c.id,
          color: COLOURS[c.id] ?? PALETTE[k % PALETTE.length],
          x: study.configs[c.id]!.points.map((p) => (axis === 'minutes' ? idleMinutes(study, c.id, p) : p.kimg)),
          y: study.configs[c.id]!.points.map((p) => p.metrics[metric] ?? NaN),
        }));
        const floor = study.floors[data]?.metrics[metric];
        if (floor !== undefined) {
          const xs = series.flatMap((s) => s.x);
          series.push({ label: `real images (${study.floors[data]!.samples})`, color: '#000000', x: [Math.min(...xs), Math.max(...xs)], y: [floor, floor] });
        }
        const file = join(dir, `${name}-${metric}-vs-${axis}.png`);
        await writeLinePlot(file, series, {
          title: `${data}, ${what}: ${metric} (${study.settings.samples} samples, EMA)`,
          xLabel: axis === 'minutes' ? 'training minutes on the quiet machine (kimg ÷ measured images/s)' : 'kimg (patch samples, the official counter)',
          yLabel: metric,
          logY: metric.startsWith('kid'),
        });
        written.push(file);
      }
    }
  }
  written.push(...(await drawSmallSetPlots(dir, study)));
  return written;
}

/** The metrics the configurations' points hold, in the configurations' order (fid-inception only where --detector ran). */
function measuredMetrics(study: Study, configs: StudyConfig[]): string[] {
  const names = new Set<string>();
  for (const c of configs) for (const p of study.configs[c.id]?.points ?? []) for (const m of Object.keys(p.metrics)) names.add(m);
  return [...names];
}

/** The width of the configuration column: the longest id. */
const ID_WIDTH = Math.max(...CONFIGS.map((c) => c.id.length));

function summary(study: Study): string {
  const lines: string[] = [];
  const ids = CONFIGS.filter((c) => study.configs[c.id]?.points.length);
  lines.push('minutes: on the quiet machine (kimg ÷ the calibrated images/s); own clock: the run\'s wall-clock, slowed by whatever else ran');
  if (ids.some((c) => c.smallSet)) lines.push('small sets (fm500-…, fm2k-…): FD, KID and SWD against the held-out test split');
  lines.push(`${'config'.padEnd(ID_WIDTH)} minutes  own clock    kimg   img/s   FD(best)  FD(last)  KID(last)  SWD(last)  NN-pixel(med)  NN-feat(med)  close-copies`);
  for (const c of ids) {
    const pts = study.configs[c.id]!.points;
    const last = pts.at(-1)!;
    const q = qualityNames(c);
    const best = Math.min(...pts.map((p) => p.metrics[q.fd] ?? Infinity));
    const m = last.memorisation;
    // A set without a held-out part (emoji) gives no threshold for "close": only its distances are shown.
    const closeCopies = c.heldOut === c.data ? 'n/a' : `${fx(m ? m.pixels.samples.closeShare * 100 : NaN, 1)}%`;
    lines.push(
      `${c.id.padEnd(ID_WIDTH)} ${fx(idleMinutes(study, c.id, last), 1).padStart(8)} ${fx(last.minutes, 1).padStart(10)} ${fx(last.kimg, 1).padStart(7)} ` +
        `${fx(calibrationOf(study, c.id)?.imagesPerSec, 1).padStart(7)} ${fx(best).padStart(9)} ${fx(last.metrics[q.fd]).padStart(9)} ` +
        `${fx(last.metrics[q.kid], 4).padStart(10)} ${fx(last.metrics[q.swd], 2).padStart(10)} ${fx(m?.pixels.samples.median, 4).padStart(14)} ` +
        `${fx(m?.features?.samples.median, 3).padStart(13)} ${closeCopies.padStart(13)}`,
    );
  }
  // Per data set: the time each configuration needs to reach the best its full-image run reached within its budget.
  // The headline metric: FD in the classifier's features, else FID where --detector measured it, else SWD.
  const metric = (c: StudyConfig) =>
    c.smallSet ? 'fd-heldout' : c.metrics.includes('fd-classifier') ? 'fd-classifier' : measuredMetrics(study, [c]).includes('fid-inception') ? 'fid-inception' : (c.metrics[0] ?? 'swd');
  for (const data of new Set(ids.map((c) => c.data))) {
    // The full-image run on this set: not a second seed of one (a small set's borrows another set's calibration).
    const base = ids.find((c) => c.data === data && c.train.realP === 1 && (!c.sameWorkAs || configById(c.sameWorkAs)?.data !== c.data));
    if (!base) continue;
    const m = metric(base);
    const target = Math.min(...study.configs[base.id]!.points.map((p) => p.metrics[m] ?? Infinity));
    lines.push(`\nminutes to reach ${m} ${fx(target)} (the best of ${base.id} in its ${fx(trainedMinutes(study, base.id), 1)} minutes):`);
    for (const c of ids.filter((c) => c.data === data)) lines.push(`  ${c.id.padEnd(ID_WIDTH)} ${fx(minutesToReach(study, c.id, m, target), 1)}`);
  }
  // Every configuration at the same budgets: the ablations' comparison (equal wall-clock).
  const longest = Math.max(...ids.map((c) => trainedMinutes(study, c.id)));
  const budgets = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224].filter((m) => m <= longest);
  if (budgets.length) {
    lines.push(`\nat equal quiet-machine minutes (linear between measurements; FD, else FID with --detector, else SWD):`);
    lines.push(`${'config'.padEnd(ID_WIDTH)} ${'metric'.padEnd(13)} ${budgets.map((m) => `${m} min`.padStart(8)).join('')}`);
    for (const c of ids)
      lines.push(`${c.id.padEnd(ID_WIDTH)} ${metric(c).padEnd(13)} ${budgets.map((m) => fx(metricAt(study, c.id, metric(c), m), 1).padStart(8)).join('')}`);
  }
  for (const [data, f] of Object.entries(study.floors))
    lines.push(`floor of ${data} (${f.source}, ${f.samples} real images): ${Object.entries(f.metrics).map(([k, v]) => `${k} ${fx(v, 4)}`).join(', ')}`);
  lines.push(...smallSetSummary(study));
  return lines.join('\n');
}

/** The names of a configuration's FD, KID and SWD in its points: a small set's are against its held-out images. */
const qualityNames = (c: StudyConfig) =>
  c.smallSet ? { fd: 'fd-heldout', kid: 'kid-heldout', swd: 'swd-heldout' } : { fd: 'fd-classifier', kid: 'kid-classifier', swd: 'swd' };

/** Every point of the small-set configurations (issue 30): generalisation and memorisation side by side, per epoch. */
function smallSetSummary(study: Study): string[] {
  const ids = CONFIGS.filter((c) => c.smallSet && study.configs[c.id]?.points.length);
  if (!ids.length) return [];
  const lines = [
    '\nsmall sets, every point: FD against the held-out test split and against the training set; class TV: the classifier\'s class shares against the',
    'training set\'s; close copies: samples nearer a training image than the held-out images\' 5th percentile (real images never trained on: the floor)',
    `${'config'.padEnd(ID_WIDTH)}  epochs  minutes  FD(held-out)  FD(train)  KID(held-out)  class TV  NN-pixel(med)  close(pixels)  close(features)`,
  ];
  const row = (label: string, epochs: number, minutes: number, m: Record<string, number>) =>
    `${label.padEnd(ID_WIDTH)} ${fx(epochs, 0).padStart(7)} ${fx(minutes, 1).padStart(8)} ${fx(m['fd-heldout']).padStart(13)} ${fx(m['fd-train']).padStart(10)} ` +
    `${fx(m['kid-heldout'], 4).padStart(14)} ${fx(m['class-tv'], 3).padStart(9)} ${fx(m['nn-pixels-median'], 4).padStart(14)} ` +
    `${`${fx((m['close-copies-pixels'] ?? NaN) * 100, 1)}%`.padStart(14)} ${`${fx((m['close-copies-features'] ?? NaN) * 100, 1)}%`.padStart(16)}`;
  for (const data of new Set(ids.map((c) => c.data))) {
    const f = study.floors[data];
    if (f) lines.push(row(`floor ${data.replace('fashion-mnist-', '')}`, NaN, NaN, f.metrics));
    for (const c of ids.filter((c) => c.data === data))
      for (const p of study.configs[c.id]!.points) lines.push(row(c.id, epochsOf(c, p.kimg), idleMinutes(study, c.id, p), p.metrics));
  }
  return lines;
}

// ---- calibration ---------------------------------------------------------------------------------------

/**
 * Measures the configurations' training speed side by side (A B C, then C B A, so a drifting machine affects all
 * alike) and stores it. This machine's speed drifts by a quarter over hours, so configurations calibrated after
 * the others are measured beside anchors calibrated before, and their figures are scaled by how the anchors'
 * speed differs now. A progressive configuration gets one figure per patch size.
 */
async function calibrate(dir: string, study: Study, own: Ownership, configs: StudyConfig[], anchors: string[], minutes: number, threads: number): Promise<void> {
  const measured = [...configs, ...anchors.map((id) => configById(id)!)];
  console.log(
    `calibration: ${configs.map((c) => c.id).join(', ')}${anchors.length ? ` beside the anchors ${anchors.join(', ')}` : ''}, ` +
      `${minutes} min per turn; the machine should be quiet now (load ${loadavg().map((l) => l.toFixed(2)).join(' ')})`,
  );
  const rateOf = (ticks: CalibrationTick[]) => median(ticks.map((x) => x.imagesPerSec));
  const turns = new Map<string, { ticks: CalibrationTick[]; medians: number[]; loads: number[][] }>();
  for (const c of [...measured, ...[...measured].reverse()]) {
    const t = turns.get(c.id) ?? { ticks: [], medians: [], loads: [] };
    t.loads.push(loadavg());
    const ticks = await runChild<CalibrationTick[]>(SCRIPT, { mode: 'calibrate', config: c, runsDir: join(dir, 'calibration'), minutes, threads } satisfies CalibrateCfg, { prefix: `    | ${c.id}: ` });
    const rate = rateOf(ticks);
    t.ticks.push(...ticks);
    t.medians.push(rate);
    turns.set(c.id, t);
    console.log(`  ${c.id}: ${fx(rate, 1)} images/s (${ticks.length} ticks)`);
  }
  const anchorsNow = Object.fromEntries(anchors.map((id) => [id, rateOf(turns.get(id)!.ticks)]));
  // The geometric mean of the anchors' then/now ratios: 1 without anchors.
  const scale = Math.exp(anchors.reduce((sum, id) => sum + Math.log(study.calibration![id]!.imagesPerSec / anchorsNow[id]!), 0) / Math.max(anchors.length, 1));
  if (anchors.length) console.log(`  the anchors ran ${fx(1 / scale, 3)}× their calibrated speed: the new figures are scaled by ${fx(scale, 3)}`);
  study.calibration ??= {};
  for (const c of configs) {
    const t = turns.get(c.id)!;
    const record: Calibration = { at: nowIso(), imagesPerSec: rateOf(t.ticks) * scale, turns: t.medians, loads: t.loads, ...(anchors.length ? { scaledBy: scale, anchorsNow } : {}) };
    if (c.train.progressive) {
      const stages: Record<string, number> = {};
      for (const size of progressiveSchedule(c).patchSizes) {
        const at = t.ticks.filter((x) => x.patchSize === size);
        if (!at.length) throw new Error(`${c.id}: the calibration has no whole tick at patch size ${size}; raise --calibrate-minutes`);
        stages[size] = rateOf(at) * scale;
      }
      record.stageImagesPerSec = stages;
      // For the summary: the mean speed over the whole schedule.
      const kimg = (c.train.duration as number) * 1000;
      record.imagesPerSec = (kimg * 1000) / (progressiveMinutes(c, stages, kimg) * 60);
    }
    study.calibration[c.id] = record;
    own.calibrations.add(c.id);
  }
  saveStudy(dir, study, own);
}

// ---- parent ---------------------------------------------------------------------------------------------

const SPEC: Record<string, OptionSpec> = {
  study: { type: 'string', help: 'the study folder (created; an existing one is continued)' },
  configs: { type: 'string', default: 'fm-p1,fm-p0.5,fm-p0.25', help: `configurations to advance, in turn (--list shows all ${CONFIGS.length})` },
  segmentMinutes: { type: 'number', default: 5, help: 'training minutes per configuration between measurements (quiet-machine minutes: kimg from the calibration)' },
  untilMinutes: { type: 'number', default: 60, help: 'stop advancing a configuration once it has trained this long' },
  hours: { type: 'number', default: 1000, help: 'stop after this many hours of this command (the study stays resumable)' },
  samples: { type: 'int', default: 500, help: 'samples per measurement (seeds 0..N−1)' },
  sampleSteps: { type: 'int', default: 18, help: 'Heun steps per sample' },
  threads: { type: 'int', default: 2, help: 'libtorch threads of the training and sampling children' },
  calibrate: { type: 'boolean', default: false, help: 'measure the selected configurations\' images/s again (run it on a quiet machine)' },
  calibrateMinutes: { type: 'number', default: 1.5, help: 'minutes per configuration and turn of the calibration (two turns each)' },
  detector: { type: 'string', help: 'Inception-v3 weights (pytorch-fid\'s .pth or a safetensors): every measurement of this command adds fid-inception' },
  list: { type: 'boolean', default: false, help: 'list the configurations and exit' },
};

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/quality-study.js --study DIR [options]\n\nSample quality vs wall-clock, configurations in turn, resumable.');
  if (opt.bool(o, 'list')) {
    for (const c of CONFIGS) console.log(`${c.id.padEnd(ID_WIDTH)} ${c.what}  (${c.data}; ${JSON.stringify(c.train)})`);
    return;
  }
  const dirArg = opt.strOpt(o, 'study');
  if (!dirArg) throw new UsageError('--study DIR is required');
  const dir = resolve(dirArg);
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const ids = opt.str(o, 'configs').split(',').filter(Boolean);
  const selected = ids.map((id) => configById(id) ?? (() => { throw new UsageError(`unknown configuration '${id}' (see --list)`); })());
  const settings = { samples: opt.num(o, 'samples'), sampleSteps: positiveInt(opt.num(o, 'sampleSteps'), '--sample-steps'), segmentMinutes: opt.num(o, 'segmentMinutes'), threads: positiveInt(opt.num(o, 'threads'), '--threads') };
  const until = opt.num(o, 'untilMinutes');
  const deadline = performance.now() + opt.num(o, 'hours') * 3600_000;
  const study = readStudy(dir, settings);
  const own: Ownership = { configs: new Set(ids), calibrations: new Set() };
  const machine = formatMachine(machineInfo());
  if (!study.machines.includes(machine)) study.machines.push(machine);
  console.log(`quality-study in ${dir}\n${machine}\nconfigurations: ${ids.join(', ')}; ${settings.segmentMinutes} min segments until ${until} min each; ${settings.samples} samples × ${settings.sampleSteps} steps per measurement\n`);

  const detector = opt.strOpt(o, 'detector');
  if (detector && !existsSync(detector)) throw new UsageError(`--detector ${detector}: no such file`);
  const measuring = detector ? { detector: resolve(detector) } : {};
  // The floors: held-out real images against the reference, once per data set (again for FID, once --detector is given).
  for (const c of selected) {
    const known = study.floors[c.data];
    if (known && !(detector && known.metrics['fid-inception'] === undefined)) continue;
    const f = await runChild<MeasureResult>(SCRIPT, { mode: 'measure', config: c, snapshot: null, samples: settings.samples, steps: settings.sampleSteps, threads: settings.threads, ...measuring } satisfies MeasureCfg);
    study.floors[c.data] = { source: c.floorSource ?? c.heldOut, samples: settings.samples, metrics: { ...known?.metrics, ...f.metrics } };
    saveStudy(dir, study, own);
    console.log(`floor of ${c.data}: ${JSON.stringify(f.metrics)}`);
  }

  const toCalibrate = [...new Set(selected.map((c) => calibrationId(c.id)))];
  const uncalibrated = CONFIGS.filter((c) => toCalibrate.includes(c.id) && (opt.bool(o, 'calibrate') || !study.calibration?.[c.id]));
  const anchors = opt.bool(o, 'calibrate') ? [] : ANCHORS.filter((id) => study.calibration?.[id] && !uncalibrated.some((c) => c.id === id));
  if (uncalibrated.length) await calibrate(dir, study, own, uncalibrated, anchors, opt.num(o, 'calibrateMinutes'), settings.threads);

  for (;;) {
    // The configuration with the least training so far goes next (ties: the listed order).
    const open = selected.filter((c) => trainedMinutes(study, c.id) < until && !scheduleDone(study, c));
    if (!open.length) break;
    if (performance.now() > deadline) {
      console.log('--hours reached; the study can be continued with the same command');
      break;
    }
    const c = open.reduce((a, b) => (trainedMinutes(study, b.id) < trainedMinutes(study, a.id) ? b : a));
    const rec = (study.configs[c.id] ??= { id: c.id, runDir: null, points: [] });
    if (rec.runDir && !existsSync(rec.runDir))
      throw new UsageError(`${c.id}: its run directory ${rec.runDir} is gone (the study record alone cannot continue it); start a new --study, or delete configs.${c.id} from ${join(dir, 'study.json')}`);
    const cal = calibrationOf(study, c.id);
    // A progressive run trains on its own clock: a kimg target would change the duration its schedule is laid over.
    const segmentKimg = cal && !c.train.progressive ? (settings.segmentMinutes * 60 * cal.imagesPerSec) / 1000 : null;
    const seg = await runChild<SegmentResult>(SCRIPT, {
      mode: 'segment', config: c, runsDir: join(dir, 'runs'), runDir: rec.runDir, minutes: settings.segmentMinutes, segmentKimg, threads: settings.threads,
    } satisfies SegmentCfg, { prefix: `    | ${c.id}: ` });
    rec.runDir = seg.runDir;
    saveStudy(dir, study, own);
    const m = await runChild<MeasureResult>(SCRIPT, {
      mode: 'measure', config: c, snapshot: seg.snapshot, samples: settings.samples, steps: settings.sampleSteps, threads: settings.threads, gridPath: join(dir, `${c.id}-latest.png`), ...measuring,
      // Redrawn at every point: the one on file is the last point's.
      ...(c.smallSet ? { nearestGridPath: join(dir, `${c.id}-nearest.png`) } : {}),
    } satisfies MeasureCfg, { prefix: `    | ${c.id}: ` });
    rec.points.push({
      at: nowIso(), minutes: seg.minutes, kimg: seg.kimg, metrics: m.metrics, memorisation: m.memorisation!, samplingSec: m.samplingSec, load: loadavg(),
      ...(m.classShares ? { classShares: m.classShares } : {}),
    });
    saveStudy(dir, study, own);
    console.log(`${c.id}: ${fx(trainedMinutes(study, c.id), 1)} min (own clock ${fx(seg.minutes, 1)}), ${fx(seg.kimg, 1)} kimg: ${Object.entries(m.metrics).map(([k, v]) => `${k} ${fx(v, 4)}`).join(', ')}`);
    await drawPlots(dir, study);
    writeFileAtomic(join(dir, 'summary.txt'), [new TextEncoder().encode(summary(study) + '\n')]);
  }
  // The record may hold other commands' newer points: the summary and plots are redrawn from all of it.
  const text = summary(study);
  writeFileAtomic(join(dir, 'summary.txt'), [new TextEncoder().encode(text + '\n')]);
  console.log('\n' + text);
  console.log(`\nplots: ${(await drawPlots(dir, study)).join('\n       ')}`);
}

type ChildCfg = SegmentCfg | MeasureCfg | CalibrateCfg;
const child = childConfig<ChildCfg>();
if (child)
  runAsChild<ChildCfg, SegmentResult | MeasureResult | CalibrationTick[]>(child, (c) =>
    c.mode === 'segment' ? segmentChild(c) : c.mode === 'measure' ? measureChild(c) : calibrateChild(c),
  );
else benchMain('quality-study', parent);
