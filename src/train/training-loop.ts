// The Patch Diffusion training loop, in the shape of the official
// training_loop.py: per optimizer step (src/train/step.ts) one patch size per
// accumulation round, a batch that grows as patches shrink, Adam with a
// learning-rate ramp, gradient NaN/Inf scrubbing and an EMA by half-life in
// images; then, per tick, the status line, stats.jsonl and a typed event,
// snapshots with sample grids, and the training state. A stop request (an
// AbortSignal; --max-minutes; the CLI's Ctrl-C) ends the run after the step in
// progress, writing a snapshot and the state first.
//
// Data-parallel (src/distributed): every rank runs this loop in lockstep. Losses,
// image counts and stop requests are summed over the ranks after every step,
// so every rank sees the same statistics and stops after the same step; only
// rank 0 prints and writes files, from states the others send it.
import { join } from 'node:path';
import { adaptThreads, describeEngine, getNumThreads } from '../tensor/index.js';
import type { ImageDataset } from '../data/dataset.js';
import { createProgress } from '../util/progress.js';
import { trainingStep } from './step.js';
import { RunLog, writeJson } from './run-dir.js';
import { stateName, TrainingState } from './training-state.js';
import { SnapshotWriter } from './snapshot-writer.js';
import { TickMeter } from './tick-stats.js';
import { launcherGone } from '../distributed/environment.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import type { ResolvedTrainOptions } from './options.js';
import type { TrainingComponents } from './components.js';
import type { TrainingEvent } from './events.js';

/** How a run ended: where it is, how far it got, and why it stopped. */
export interface TrainingResult {
  /** The run directory (its snapshots, states, stats.jsonl, log.txt); '' on the ranks other than 0. */
  runDir: string;
  /** Patch samples trained (the official cur_nimg), earlier processes of a resumed run included. */
  curNimg: number;
  /** Stopped before its duration (an abort or --max-minutes), with a resumable state written. */
  stoppedEarly: boolean;
  /** Stopped by --max-minutes (not by a signal). */
  timeLimitReached?: boolean;
  /** A resume of a run that had already reached its duration: nothing was trained or written. */
  alreadyFinished?: boolean;
  /** The newest network snapshot this process wrote (null if none). */
  lastSnapshot: string | null;
}

export interface TrainingLoopArgs {
  options: ResolvedTrainOptions;
  dataset: ImageDataset;
  components: TrainingComponents;
  /** Counters, weights, optimizer and streams restored from a saved state (default: a new run's). */
  state?: TrainingState;
  resumed?: boolean;
  runDir: string;
  log: RunLog;
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
  const state = a.state ?? new TrainingState(c);
  const dist = a.dist ?? null;
  const isMain = !dist || dist.isMain;
  const counters = state.counters;
  const totalNimg = Math.round(o.duration * 1e6);
  const emit = (event: TrainingEvent) => isMain && a.onEvent?.(event);
  const snapshots = new SnapshotWriter({ options: o, components: c, dataset: a.dataset, runDir, log, dist, emit });
  const tick = new TickMeter(c.device, totalNimg, dist ? dist.worldSize : null);
  const progress = a.progressBar && isMain ? createProgress({ total: totalNimg / 1000, label: 'train', unit: 'kimg', fields: ['loss'] }) : null;
  progress?.update(state.kimg);
  if (dist) log.line(`Data-parallel over ${dist.worldSize} processes (Gloo): ${o.batch / dist.worldSize} images per process per step in rounds of ${o.batchGpu}, gradients averaged every step`);
  log.line(describeTraining(o, c, dist !== null));
  emit({ type: 'start', runDir, kimg: state.kimg, totalKimg: totalNimg / 1000, resumed: a.resumed ?? false });

  let stoppedEarly = false;
  let nonFiniteStreak = 0;
  let lastSnapshot: string | null = null;
  const startedAt = Date.now();
  for (;;) {
    const step = trainingStep({ options: o, components: c, curNimg: counters.curNimg, totalNimg, dist });
    // A turn of the event loop after every step: an abort, a timer or a signal handler runs now, not at the next tick's await.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const stopVote = a.stopSignal?.requested || launcherGone() ? 1 : 0;
    const finite = step.rounds.filter((r) => Number.isFinite(r.lossMean));
    const mine = [stopVote, finite.reduce((s, r) => s + r.lossMean, 0), finite.length, step.rounds.length - finite.length, step.rounds.reduce((s, r) => s + r.images, 0)];
    // One small sum per step keeps the ranks' statistics and stop decision identical.
    const [stops, lossSum, lossCount, nonFinite, images] = (dist ? dist.sum(mine) : mine) as [number, number, number, number, number];
    tick.add({ lossSum, lossCount, images, syncMs: step.syncMs, nonFiniteGradients: step.nonFiniteGradients });
    nonFiniteStreak = lossCount > 0 ? 0 : nonFiniteStreak + nonFinite;
    if (nonFiniteStreak >= MAX_NONFINITE_STEPS)
      throw new Error(`the loss has been NaN/Inf for ${nonFiniteStreak} rounds in a row at kimg ${state.kimg.toFixed(1)}: training diverged (try a lower --lr)`);
    adaptThreads();
    state.advance(step.imagesPerStep);
    const tickLoss = tick.meanLoss();
    progress?.update(state.kimg, { loss: Number.isNaN(tickLoss) ? '-' : tickLoss.toFixed(4) });

    // ---- ticks, snapshots, states ------------------------------------------------------------
    const done = counters.curNimg >= totalNimg;
    stoppedEarly ||= stops > 0;
    if (!done && !stoppedEarly && counters.curNimg < counters.tickStartNimg + o.tick * 1000) continue;

    const report = tick.close(state, step.lr);
    log.stats(report.entry);
    emit(report.event);
    log.line(report.line);
    const snapshotDue = done || stoppedEarly || counters.curTick % o.snap === 0;
    const stateDue = done || stoppedEarly || (counters.curTick % o.dump === 0 && counters.curTick > 0);
    state.startNextTick();
    if (snapshotDue) lastSnapshot = (await snapshots.write(state, tick.lossHistory)) ?? lastSnapshot;
    if (stateDue) {
      const path = join(runDir, stateName(state.kimg));
      state.save(path, { options: o as unknown as Record<string, unknown>, info: snapshots.info(state.kimg) }, dist);
      emit({ type: 'state', kimg: state.kimg, path });
    }
    tick.restartClock();
    if (done || stoppedEarly) break;
  }
  progress?.stop();
  if (stoppedEarly) log.line(`Stopped at kimg ${state.kimg.toFixed(1)}; the state is saved. Resume with: patch-diffusion train --resume ${runDir}`);
  else log.line(`Done: ${state.kimg.toFixed(1)} kimg in ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);
  if (isMain) writeJson(join(runDir, 'progress.json'), { curNimg: counters.curNimg, finished: !stoppedEarly, lastSnapshot });
  return { runDir, curNimg: counters.curNimg, stoppedEarly, lastSnapshot };
}

/** The run's opening line: what it trains on, how, and on what. */
function describeTraining(o: ResolvedTrainOptions, c: TrainingComponents, distributed: boolean): string {
  const method = o.precond === 'pedm' ? `patch sizes ${c.patches.patchSizes.join('/')}` : `${o.precond} on whole images`;
  const extras = [
    o.augment > 0 ? `, augment ${o.augment}` : '',
    c.latent ? `; in the latent space of ${c.latent.vae}${o.preEncode ? ', pre-encoded' : ''}` : '',
    o.maskPos ? '; coordinates masked' : '',
  ].join('');
  const threads = `${getNumThreads()} threads${distributed ? ' per process' : o.threads ? '' : ' (following the free cores)'}`;
  return `Training for ${+(o.duration * 1000).toPrecision(6)} kimg (${o.batch} per step × batch_mul_avg ${c.patches.batchMulAvg.toFixed(2)}; ${method}${extras}), ` +
    `${threads}, device ${c.device}, precision ${o.precision}${o.channelsLast ? ', channels-last' : ''}; ${describeEngine()}...`;
}
