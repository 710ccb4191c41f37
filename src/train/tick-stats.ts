// What a tick reports: the steps' losses, speed, memory and, in a
// data-parallel run, the time spent averaging gradients, summed while the
// tick runs and turned into one stats.jsonl entry, one event and one log line
// when it ends (the official training_loop.py's tick maintenance).
import { resourceUsage } from 'node:process';
import { cudaMemoryStats, liveTensors, resetCudaPeakMemory, type Device } from '../tensor/index.js';
import type { TrainingEvent } from './events.js';
import type { TrainingState } from './training-state.js';

/** One step's share of a tick, summed over the ranks. */
export interface StepFigures {
  lossSum: number;
  /** Rounds whose loss was finite (the loss is their mean). */
  lossCount: number;
  /** Images (patches) the rounds drew. */
  images: number;
  /** Milliseconds this rank spent waiting for the gradients' mean. */
  syncMs: number;
  nonFiniteGradients: boolean;
}

/** A finished tick: its stats.jsonl entry and what its line and event show. */
export interface TickReport {
  entry: Record<string, number>;
  event: Extract<TrainingEvent, { type: 'tick' }>;
  line: string;
}

export class TickMeter {
  private startedAt = Date.now();
  private lossSum = 0;
  private lossCount = 0;
  private badGradSteps = 0;
  private images = 0;
  private syncMs = 0;
  private steps = 0;
  private peakRssGb = 0;
  /** Mean loss per tick, for the loss plot. */
  readonly lossHistory: { kimg: number; loss: number }[] = [];

  constructor(
    private readonly device: Device,
    private readonly totalNimg: number,
    /** The world size of a data-parallel run (null: one process). */
    private readonly worldSize: number | null,
  ) {}

  add(step: StepFigures): void {
    this.lossSum += step.lossSum;
    this.lossCount += step.lossCount;
    this.images += step.images;
    this.syncMs += step.syncMs;
    this.steps += 1;
    if (step.nonFiniteGradients) this.badGradSteps += 1;
  }

  /** The tick's mean loss so far (for a progress bar). */
  meanLoss(): number {
    return this.lossCount ? this.lossSum / this.lossCount : NaN;
  }

  /** Ends the tick at the state's counters (before they move to the next tick); `restartClock` starts the next one. */
  close(state: TrainingState, lr: number): TickReport {
    const { curTick, curNimg, tickStartNimg, step } = state.counters;
    const now = Date.now();
    const tickSec = (now - this.startedAt) / 1000;
    const tickKimg = (curNimg - tickStartNimg) / 1000;
    const rssGb = process.memoryUsage().rss / 2 ** 30;
    this.peakRssGb = Math.max(this.peakRssGb, resourceUsage().maxRSS / 2 ** 20);
    // On a GPU, the caching allocator's peak over the tick (EDM's Resources/peak_gpu_mem_gb).
    const gpu = cudaMemoryStats(this.device);
    if (gpu) resetCudaPeakMemory(this.device);
    const loss = this.meanLoss();
    this.lossHistory.push({ kimg: curNimg / 1000, loss });
    const secPerKimg = tickKimg > 0 ? tickSec / tickKimg : NaN;
    const entry: Record<string, number> = {
      'Progress/tick': curTick,
      'Progress/kimg': curNimg / 1000,
      'Progress/step': step,
      'Loss/loss': loss,
      'Loss/nonfinite_grad_steps': this.badGradSteps,
      'Timing/total_sec': state.totalSeconds(now),
      'Timing/sec_per_tick': tickSec,
      'Timing/sec_per_kimg': secPerKimg,
      'Timing/images_per_sec': tickSec > 0 ? (tickKimg * 1000) / tickSec : NaN,
      'Timing/real_images_per_sec': tickSec > 0 ? this.images / tickSec : NaN,
      'Resources/rss_gb': rssGb,
      'Resources/peak_rss_gb': this.peakRssGb,
      'Resources/live_tensors': liveTensors(),
      ...(gpu ? { 'Resources/peak_gpu_mem_gb': gpu.peakAllocated / 2 ** 30, 'Resources/gpu_reserved_gb': gpu.reserved / 2 ** 30 } : {}),
      ...(this.worldSize !== null ? { 'Dist/world_size': this.worldSize, 'Timing/grad_sync_ms_per_step': this.syncMs / this.steps } : {}),
      'Schedule/lr': lr,
      timestamp: now / 1000,
    };
    const event: TickReport['event'] = {
      type: 'tick', tick: curTick, kimg: curNimg / 1000, totalKimg: this.totalNimg / 1000, loss, imagesPerSec: entry['Timing/images_per_sec']!,
      learningRate: lr, elapsedSec: entry['Timing/total_sec']!, remainingSec: ((this.totalNimg - curNimg) / 1000) * secPerKimg, rssGb,
    };
    const line = [
      `tick ${curTick}`, `kimg ${(curNimg / 1000).toFixed(1)}`, `loss ${loss.toFixed(4)}`, `sec/kimg ${secPerKimg.toFixed(2)}`,
      `img/s ${entry['Timing/images_per_sec']!.toFixed(1)}`, `lr ${lr.toExponential(2)}`, `rss ${rssGb.toFixed(2)} GB`,
      ...(gpu ? [`gpumem ${(gpu.peakAllocated / 2 ** 30).toFixed(2)} GB`] : []),
      ...(this.badGradSteps ? [`non-finite gradients in ${this.badGradSteps} steps (replaced)`] : []),
    ].join('  ');
    this.lossSum = this.lossCount = this.badGradSteps = this.images = this.syncMs = this.steps = 0;
    return { entry, event, line };
  }

  /** The next tick's time starts now (after the snapshot and state writing, which no tick's speed includes). */
  restartClock(): void {
    this.startedAt = Date.now();
  }
}
