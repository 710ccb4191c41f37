// A run's snapshots: the EMA network (network-snapshot-KKKKKK.safetensors),
// its sample grid on fixed seeds, the loss plot and, every `--metrics-every`
// snapshots, sample quality against the training set. In a data-parallel run
// every rank takes part (the weights are checked to agree and the metrics'
// samples are shared out), and rank 0 writes.
import { join } from 'node:path';
import type { ImageDataset } from '../data/dataset.js';
import { writeImageGrid } from '../io/images.js';
import { writeLinePlot } from '../io/plot.js';
import { computeMetrics } from '../metrics/evaluate.js';
import type { ImageArray } from '../metrics/images.js';
import { saveNetworkSnapshot, snapshotName, type SnapshotInfo } from '../model/snapshot.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { gatherInOrder, rankBatches } from '../distributed/split.js';
import type { ResolvedTrainOptions } from './options.js';
import type { TrainingComponents } from './components.js';
import type { RunLog } from './run-dir.js';
import type { TrainingEvent } from './events.js';
import type { TrainingState } from './training-state.js';

/** The metrics' samples are drawn in batches of this many. */
const METRICS_BATCH = 64;

export interface SnapshotWriterArgs {
  options: ResolvedTrainOptions;
  components: TrainingComponents;
  dataset: ImageDataset;
  runDir: string;
  log: RunLog;
  dist: ProcessGroup | null;
  /** Rank 0's events (the others pass nothing). */
  emit: (event: TrainingEvent) => void;
}

export class SnapshotWriter {
  constructor(private readonly a: SnapshotWriterArgs) {}

  /** What a snapshot records about the run (the network, the data set, the options). */
  info(kimg: number): SnapshotInfo {
    const { components: c, dataset: d, options } = this.a;
    return {
      network: c.networkConfig,
      dataset: { name: d.name, resolution: d.resolution, channels: d.channels, labelDim: c.labelDim },
      kimg,
      trainingOptions: options as unknown as Record<string, unknown>,
      ...(c.latent ? { latent: c.latent } : {}),
    };
  }

  /** Every rank calls it at the state's counters; rank 0 writes and returns the snapshot's path. */
  async write(state: TrainingState, lossHistory: readonly { kimg: number; loss: number }[]): Promise<string | null> {
    const { options: o, components: c, dist, runDir, log } = this.a;
    const kimg = state.kimg;
    // As the official check_ddp_consistency: every rank must hold the same weights.
    if (dist) state.checkSameWeights(dist);
    state.counters.snapshots += 1;
    const metricsDue = o.metrics.length > 0 && state.counters.snapshots % o.metricsEvery === 0;
    const started = Date.now();
    const generated = metricsDue ? this.sampleForMetrics() : null;
    if (dist && !dist.isMain) return null;
    const path = join(runDir, snapshotName(kimg));
    saveNetworkSnapshot(path, c.ema, this.info(kimg));
    // Fixed seeds 0..N−1: a grid people can compare across snapshots.
    const grid = c.model.sample({ seeds: Array.from({ length: o.gridSeeds }, (_, k) => k), steps: o.gridSteps, batch: o.gridSeeds });
    const gridPath = join(runDir, `samples-${String(Math.floor(kimg)).padStart(6, '0')}.png`);
    log.image('Samples/grid', state.counters.curNimg, await writeImageGrid(gridPath, grid));
    if (lossHistory.length >= 2)
      await writeLinePlot(join(runDir, 'loss.png'), [{ label: 'training loss', x: lossHistory.map((p) => p.kimg), y: lossHistory.map((p) => p.loss) }],
        { title: 'Training loss (per-pixel mean, per tick)', xLabel: 'kimg', yLabel: 'loss', logY: true });
    this.a.emit({ type: 'snapshot', kimg, path, gridPath });
    if (generated) await this.measureQuality(kimg, generated, started);
    return path;
  }

  /** The EMA network's samples for seeds 0..N−1, each rank drawing its share (rank 0 gets them all). */
  private sampleForMetrics(): ImageArray {
    const { options: o, components: c, dist } = this.a;
    const n = o.metricsSamples;
    const sample = (seeds: number[]) => c.model.sample({ seeds, steps: o.gridSteps, batch: METRICS_BATCH, layout: 'nchw' });
    if (!dist) return sample(Array.from({ length: n }, (_, k) => k));
    const positions = rankBatches(n, METRICS_BATCH, dist.rank, dist.worldSize).flat();
    const mine = sample(positions);
    const itemBytes = mine.channels * mine.height * mine.width;
    return { ...mine, data: gatherInOrder(dist, n, positions, mine.data, itemBytes, 'the metrics\' samples'), count: n };
  }

  /** Sample quality of the EMA network, on fixed seeds 0..N−1, against the training set. */
  private async measureQuality(kimg: number, generated: ImageArray, started: number): Promise<void> {
    const { options: o, components: c, dataset, log } = this.a;
    const report = await computeMetrics({ generated, reference: dataset, metrics: o.metrics, seed: 0, device: c.device });
    const m = report.metrics;
    const measured: Record<string, number> = {};
    if (m['fd-classifier'] !== undefined) measured.fd_classifier = m['fd-classifier'];
    if (m['kid-classifier']) measured.kid_classifier = m['kid-classifier'].mean;
    if (m.swd) measured.swd = m.swd.mean;
    log.stats({
      'Progress/kimg': kimg, 'Metrics/samples': o.metricsSamples, 'Metrics/seeds': `0-${o.metricsSamples - 1}`, 'Metrics/sampler_steps': o.gridSteps,
      ...Object.fromEntries(Object.entries(measured).map(([k, v]) => [`Metrics/${k}`, v])),
      'Timing/metrics_sec': (Date.now() - started) / 1000,
    });
    this.a.emit({ type: 'metrics', kimg, metrics: { samples: o.metricsSamples, sampler_steps: o.gridSteps, ...measured } });
    log.line(`metrics at kimg ${kimg.toFixed(1)} (${o.metricsSamples} samples, seeds 0-${o.metricsSamples - 1}): ` +
      Object.entries(measured).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  '));
  }
}
