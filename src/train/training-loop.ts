// The Patch Diffusion training loop (the official training_loop.py's
// behaviour): per accumulation round one patch size, a batch that grows as
// patches shrink, the patch loss summed per sample, Adam with a learning-rate
// ramp, gradient NaN/Inf scrubbing, an EMA by half-life in images, and an
// image counter that counts patch samples. Around it: ticks with status lines,
// stats.jsonl and typed events, snapshots with sample grids, exact resume, and
// a clean stop on request (an AbortSignal; the CLI's Ctrl-C) that writes the
// state first.
//
// Data-parallel (src/distributed): every rank runs this loop in lockstep. Losses,
// image counts and stop requests are summed over the ranks after every step,
// so every rank sees the same statistics and stops after the same step; only
// rank 0 prints and writes files, from states the others send it.
import { join } from 'node:path';
import { resourceUsage } from 'node:process';
import { adaptThreads, cudaMemoryStats, describeEngine, getNumThreads, liveTensors, resetCudaPeakMemory } from '../tensor/index.js';
import type { ImageDataset } from '../data/dataset.js';
import { createProgress } from '../util/progress.js';
import { writeImageGrid } from '../io/images.js';
import { writeLinePlot } from '../io/plot.js';
import { trainingStep } from './step.js';
import { computeMetrics } from '../metrics/evaluate.js';
import { RunLog, writeJson } from './run-dir.js';
import { saveTrainingState, stateName, type LoopState, type RankState } from './checkpoint.js';
import { saveNetworkSnapshot, snapshotName, type SnapshotInfo } from '../model/snapshot.js';
import { checkSameWeights, launcherGone, rankState } from './rank-state.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { gatherInOrder, rankBatches } from '../distributed/split.js';
import type { ImageArray } from '../metrics/images.js';
import type { ResolvedTrainOptions } from './options.js';
import type { TrainingComponents } from './components.js';
import type { TrainingEvent } from './events.js';

export interface TrainingResult {
  runDir: string;
  curNimg: number;
  stoppedEarly: boolean;
  /** Stopped by --max-minutes (not by a signal). */
  timeLimitReached?: boolean;
  /** A resume of a run that had already reached its duration: nothing was trained or written. */
  alreadyFinished?: boolean;
  lastSnapshot: string | null;
}

export interface TrainingLoopArgs {
  options: ResolvedTrainOptions;
  dataset: ImageDataset;
  components: TrainingComponents;
  runDir: string;
  log: RunLog;
  /** Restored counters when resuming. */
  resumeLoop?: LoopState;
  /** Stop requests (an AbortSignal, --max-minutes) are checked between steps. */
  stopSignal?: { readonly requested: boolean };
  /** A progress bar on stderr when it is a terminal (the CLI's). */
  progressBar?: boolean;
  /** Typed progress for the caller (library mode). */
  onEvent?: ((event: TrainingEvent) => void) | undefined;
  /** The group of a data-parallel run (null or absent: one process). */
  dist?: ProcessGroup | null;
}

/** Loss values above this for many steps in a row mean the run has diverged. */
const MAX_NONFINITE_STEPS = 50;

export async function trainingLoop(a: TrainingLoopArgs): Promise<TrainingResult> {
  const { options: o, components: c, log, runDir } = a;
  const dist = a.dist ?? null;
  const isMain = !dist || dist.isMain;
  const totalNimg = Math.round(o.duration * 1e6);
  const info: SnapshotInfo = {
    network: c.networkConfig,
    dataset: { name: a.dataset.name, resolution: a.dataset.resolution, channels: a.dataset.channels, labelDim: c.labelDim },
    kimg: 0,
    trainingOptions: o as unknown as Record<string, unknown>,
    ...(c.latent ? { latent: c.latent } : {}),
  };

  // The caller restores the sampler (each rank's own) when resuming.
  const loop: LoopState = { ...(a.resumeLoop ?? { curNimg: 0, curTick: 0, step: 0, tickStartNimg: 0, elapsedSec: 0, sampler: null }) };
  delete loop.ranks;
  const startTime = Date.now();
  let tickStartTime = startTime;
  let tickLossSum = 0, tickLossCount = 0, tickBadGradSteps = 0, tickRealImages = 0, tickSyncMs = 0, tickSteps = 0;
  let nonFiniteStreak = 0;
  let lastSnapshot: string | null = null;
  let peakRssGb = 0;
  const lossHistory: { kimg: number; loss: number }[] = [];

  const emit = (event: TrainingEvent) => {
    if (isMain) a.onEvent?.(event);
  };
  const progress = !a.progressBar || !isMain ? null : createProgress({ total: totalNimg / 1000, label: 'train', unit: 'kimg', fields: ['loss'] });
  progress?.update(loop.curNimg / 1000);
  if (dist) log.line(`Data-parallel over ${dist.worldSize} processes (Gloo): ${o.batch / dist.worldSize} images per process per step in rounds of ${o.batchGpu}, gradients averaged every step`);
  log.line(`Training for ${+(o.duration * 1000).toPrecision(6)} kimg (${o.batch} per step × batch_mul_avg ${c.patches.batchMulAvg.toFixed(2)}; ${o.precond === 'pedm' ? `patch sizes ${c.patches.patchSizes.join('/')}` : `${o.precond} on whole images`}${o.augment > 0 ? `, augment ${o.augment}` : ''}${c.latent ? `; in the latent space of ${c.latent.vae}${o.preEncode ? ', pre-encoded' : ''}` : ''}${o.maskPos ? '; coordinates masked' : ''}), ${getNumThreads()} threads${dist ? ' per process' : o.threads ? '' : ' (following the free cores)'}, device ${c.device}, precision ${o.precision}${o.channelsLast ? ', channels-last' : ''}; ${describeEngine()}...`);

  emit({ type: 'start', runDir, kimg: loop.curNimg / 1000, totalKimg: totalNimg / 1000, resumed: a.resumeLoop !== undefined });

  // Every rank calls it (the ranks' own streams travel to rank 0); rank 0 writes.
  const writeState = () => {
    // loop.elapsedSec holds the time of earlier processes; the state records the total so far.
    const saved: LoopState = { ...loop, sampler: c.sampler.getState(), elapsedSec: loop.elapsedSec + (Date.now() - startTime) / 1000 };
    if (dist) {
      saved.worldSize = dist.worldSize;
      saved.ranks = dist.gatherJson<RankState>(rankState(c), 'each rank\'s data position and random streams');
    }
    if (!isMain) return null;
    const path = join(runDir, stateName(loop.curNimg / 1000));
    saveTrainingState(path, { net: c.net, ema: c.ema, adam: c.adam, generators: c.generators, loop: saved, options: o as never, info: { ...info, kimg: loop.curNimg / 1000 } });
    emit({ type: 'state', kimg: loop.curNimg / 1000, path });
    return path;
  };
  const writeSnapshot = async () => {
    const kimg = loop.curNimg / 1000;
    // As the official check_ddp_consistency: every rank must hold the same weights.
    if (dist) checkSameWeights(dist, c, kimg);
    loop.snapshots = (loop.snapshots ?? 0) + 1;
    const metricsDue = o.metrics.length > 0 && loop.snapshots % o.metricsEvery === 0;
    // The metrics' samples are shared out over the ranks; rank 0 measures them.
    const generated = metricsDue ? sampleForMetrics() : null;
    if (!isMain) return null;
    const path = join(runDir, snapshotName(kimg));
    saveNetworkSnapshot(path, c.ema, { ...info, kimg });
    // Fixed seeds 0..N−1: a grid people can compare across snapshots.
    const grid = c.model.sample({ seeds: Array.from({ length: o.gridSeeds }, (_, k) => k), steps: o.gridSteps, batch: o.gridSeeds });
    const gridPath = join(runDir, `samples-${String(Math.floor(kimg)).padStart(6, '0')}.png`);
    const gridPng = await writeImageGrid(gridPath, grid);
    log.image('Samples/grid', loop.curNimg, gridPng);
    if (lossHistory.length >= 2)
      await writeLinePlot(join(runDir, 'loss.png'), [{ label: 'training loss', x: lossHistory.map((p) => p.kimg), y: lossHistory.map((p) => p.loss) }],
        { title: 'Training loss (per-pixel mean, per tick)', xLabel: 'kimg', yLabel: 'loss', logY: true });
    lastSnapshot = path;
    emit({ type: 'snapshot', kimg, path, gridPath });
    if (generated) await measureQuality(kimg, generated.images, generated.started);
    return path;
  };
  // The EMA network's samples for seeds 0..N−1, each rank drawing its share.
  const sampleForMetrics = (): { images: ImageArray; started: number } => {
    const started = Date.now();
    const n = o.metricsSamples;
    const sample = (seeds: number[]) => c.model.sample({ seeds, steps: o.gridSteps, batch: 64, layout: 'nchw' });
    if (!dist) return { images: sample(Array.from({ length: n }, (_, k) => k)), started };
    const positions = rankBatches(n, 64, dist.rank, dist.worldSize).flat();
    const mine = sample(positions);
    const itemBytes = mine.channels * mine.height * mine.width;
    const data = gatherInOrder(dist, n, positions, mine.data, itemBytes, 'the metrics\' samples');
    return { images: { ...mine, data, count: n }, started };
  };
  // Sample quality of the EMA network, on fixed seeds 0..N−1, against the training set.
  const measureQuality = async (kimg: number, generated: ImageArray, started: number) => {
    const report = await computeMetrics({ generated, reference: a.dataset, metrics: o.metrics, seed: 0, device: c.device });
    const m = report.metrics;
    const entry: Record<string, unknown> = { 'Progress/kimg': kimg, 'Metrics/samples': o.metricsSamples, 'Metrics/seeds': `0-${o.metricsSamples - 1}`, 'Metrics/sampler_steps': o.gridSteps };
    if (m['fd-classifier'] !== undefined) entry['Metrics/fd_classifier'] = m['fd-classifier'];
    if (m['kid-classifier']) entry['Metrics/kid_classifier'] = m['kid-classifier'].mean;
    if (m.swd) entry['Metrics/swd'] = m.swd.mean;
    entry['Timing/metrics_sec'] = (Date.now() - started) / 1000;
    log.stats(entry);
    emit({ type: 'metrics', kimg, metrics: Object.fromEntries(Object.entries(entry).filter(([k, v]) => k.startsWith('Metrics/') && typeof v === 'number').map(([k, v]) => [k.slice(8), v as number])) });
    log.line(`metrics at kimg ${kimg.toFixed(1)} (${o.metricsSamples} samples, seeds 0-${o.metricsSamples - 1}): ` +
      Object.entries(entry).filter(([k]) => /fd_|kid_|swd/.test(k)).map(([k, v]) => `${k.slice(8)} ${(v as number).toFixed(4)}`).join('  '));
  };

  let stoppedEarly = false;
  for (;;) {
    // ---- one optimizer step --------------------------------------------------------------
    let stepLossSum = 0, stepLossCount = 0, stepNonFinite = 0, stepImages = 0;
    const { lr, imagesPerStep, nonFiniteGradients, syncMs } = trainingStep({
      options: o,
      components: c,
      curNimg: loop.curNimg,
      totalNimg,
      dist,
      onRound: ({ images, lossMean }) => {
        stepImages += images;
        if (Number.isFinite(lossMean)) {
          stepLossSum += lossMean;
          stepLossCount += 1;
        } else stepNonFinite += 1;
      },
    });
    // A turn of the event loop after every step: an abort, a timer or a signal handler runs now, not at the next tick's await.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const stopVote = a.stopSignal?.requested || launcherGone() ? 1 : 0;
    // One small sum per step keeps the ranks' statistics and stop decision identical.
    const [stops, lossSum, lossCount, nonFinite, images] = dist
      ? dist.sum([stopVote, stepLossSum, stepLossCount, stepNonFinite, stepImages])
      : [stopVote, stepLossSum, stepLossCount, stepNonFinite, stepImages];
    tickLossSum += lossSum!;
    tickLossCount += lossCount!;
    tickRealImages += images!;
    tickSyncMs += syncMs;
    tickSteps += 1;
    nonFiniteStreak = lossCount! > 0 ? 0 : nonFiniteStreak + nonFinite!;
    if (nonFiniteStreak >= MAX_NONFINITE_STEPS)
      throw new Error(`the loss has been NaN/Inf for ${nonFiniteStreak} rounds in a row at kimg ${(loop.curNimg / 1000).toFixed(1)}: training diverged (try a lower --lr)`);
    if (nonFiniteGradients) tickBadGradSteps += 1;
    adaptThreads();
    loop.curNimg += Math.floor(imagesPerStep);
    loop.step += 1;
    progress?.update(loop.curNimg / 1000, { loss: tickLossCount ? (tickLossSum / tickLossCount).toFixed(4) : '-' });

    // ---- ticks, snapshots, states ------------------------------------------------------------
    const done = loop.curNimg >= totalNimg;
    if (stops! > 0) stoppedEarly = true;
    if (!done && !stoppedEarly && loop.curNimg < loop.tickStartNimg + o.tick * 1000) continue;

    const now = Date.now();
    const tickSec = (now - tickStartTime) / 1000;
    const tickKimg = (loop.curNimg - loop.tickStartNimg) / 1000;
    const rssGb = process.memoryUsage().rss / 2 ** 30;
    peakRssGb = Math.max(peakRssGb, resourceUsage().maxRSS / 2 ** 20);
    // On a GPU, the caching allocator's peak over the tick (EDM's Resources/peak_gpu_mem_gb).
    const gpu = cudaMemoryStats(c.device);
    if (gpu) resetCudaPeakMemory(c.device);
    const meanLoss = tickLossCount ? tickLossSum / tickLossCount : NaN;
    lossHistory.push({ kimg: loop.curNimg / 1000, loss: meanLoss });
    const stats = {
      'Progress/tick': loop.curTick,
      'Progress/kimg': loop.curNimg / 1000,
      'Progress/step': loop.step,
      'Loss/loss': meanLoss,
      'Loss/nonfinite_grad_steps': tickBadGradSteps,
      'Timing/total_sec': loop.elapsedSec + (now - startTime) / 1000,
      'Timing/sec_per_tick': tickSec,
      'Timing/sec_per_kimg': tickKimg > 0 ? tickSec / tickKimg : NaN,
      'Timing/images_per_sec': tickSec > 0 ? (tickKimg * 1000) / tickSec : NaN,
      'Timing/real_images_per_sec': tickSec > 0 ? tickRealImages / tickSec : NaN,
      'Resources/rss_gb': rssGb,
      'Resources/peak_rss_gb': peakRssGb,
      'Resources/live_tensors': liveTensors(),
      ...(gpu ? { 'Resources/peak_gpu_mem_gb': gpu.peakAllocated / 2 ** 30, 'Resources/gpu_reserved_gb': gpu.reserved / 2 ** 30 } : {}),
      ...(dist ? { 'Dist/world_size': dist.worldSize, 'Timing/grad_sync_ms_per_step': tickSyncMs / tickSteps } : {}),
      'Schedule/lr': lr,
      timestamp: now / 1000,
    };
    log.stats(stats);
    emit({
      type: 'tick', tick: loop.curTick, kimg: loop.curNimg / 1000, totalKimg: totalNimg / 1000, loss: meanLoss, imagesPerSec: stats['Timing/images_per_sec'],
      learningRate: lr, elapsedSec: stats['Timing/total_sec'], remainingSec: ((totalNimg - loop.curNimg) / 1000) * stats['Timing/sec_per_kimg'], rssGb,
    });
    log.line(
      `tick ${loop.curTick}  kimg ${(loop.curNimg / 1000).toFixed(1)}  loss ${meanLoss.toFixed(4)}  ` +
        `sec/kimg ${stats['Timing/sec_per_kimg'].toFixed(2)}  img/s ${stats['Timing/images_per_sec'].toFixed(1)}  ` +
        `lr ${lr.toExponential(2)}  rss ${rssGb.toFixed(2)} GB` + (gpu ? `  gpumem ${(gpu.peakAllocated / 2 ** 30).toFixed(2)} GB` : '') + (tickBadGradSteps ? `  non-finite gradients in ${tickBadGradSteps} steps (replaced)` : ''),
    );
    const snapshotDue = done || stoppedEarly || loop.curTick % o.snap === 0;
    const stateDue = done || stoppedEarly || (loop.curTick % o.dump === 0 && loop.curTick > 0);
    // Advance the tick counters before saving, so a resumed run starts the next tick (not this one again).
    loop.curTick += 1;
    loop.tickStartNimg = loop.curNimg;
    if (snapshotDue) await writeSnapshot();
    if (stateDue) writeState();
    tickStartTime = Date.now();
    tickLossSum = tickLossCount = tickBadGradSteps = tickRealImages = tickSyncMs = tickSteps = 0;
    if (done || stoppedEarly) break;
  }
  progress?.stop();
  if (stoppedEarly) log.line(`Stopped at kimg ${(loop.curNimg / 1000).toFixed(1)}; the state is saved. Resume with: patch-diffusion train --resume ${runDir}`);
  else log.line(`Done: ${(loop.curNimg / 1000).toFixed(1)} kimg in ${((Date.now() - startTime) / 1000).toFixed(0)} s.`);
  if (isMain) writeJson(join(runDir, 'progress.json'), { curNimg: loop.curNimg, finished: !stoppedEarly, lastSnapshot });
  return { runDir, curNimg: loop.curNimg, stoppedEarly, lastSnapshot };
}
