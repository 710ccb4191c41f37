// One optimizer step of Patch Diffusion training (the body of the official
// training_loop.py's `while True:` up to the tick maintenance): zero the
// gradients, per accumulation round one patch size and batch_gpu·batch_mul
// images, the patch loss summed per sample and averaged over the step's
// samples, backward; in a data-parallel run the gradients' mean over the
// ranks (DDP's all-reduce, once per step, overlapped with the last round's
// backward); then the learning-rate ramp, NaN/Inf scrubbing of the gradients,
// Adam and the EMA update. The training loop and bench/peer.ts both run exactly this function.
import { emaUpdate } from '../optim/adam.js';
import { sanitizeGradients, scope, zeroGrad, type Tensor } from '../tensor/index.js';
import { learningRate, emaBeta } from './schedule.js';
import { reducePatchLoss } from '../diffusion/loss.js';
import type { ResolvedTrainOptions } from './options.js';
import type { TrainingComponents } from './components.js';

export interface TrainingStepArgs {
  options: Pick<ResolvedTrainOptions, 'batch' | 'batchGpu' | 'lr' | 'lrRampup' | 'ema' | 'emaRampup'> & { lossScaling?: number };
  components: TrainingComponents;
  /** Patch samples counted so far (the official cur_nimg) and the run's total. */
  curNimg: number;
  totalNimg: number;
  /** Every round uses this patch size (benchmarks); default: the schedule chooses per round. */
  patchSize?: number;
  /**
   * Called after each accumulation round with the round's size, its image
   * count and its mean loss (NaN/Inf possible). It may throw to abort the step.
   */
  onRound?: (round: Round) => void;
  /**
   * Data-parallel runs: replaces each gradient by its mean over the ranks
   * (src/distributed). `backward`, where given, runs the last round's backward
   * pass and may start that all-reduce during it (DDP's overlap), which
   * averageGradients then waits for.
   */
  dist?: { averageGradients(params: readonly Tensor[]): void; backward?(loss: Tensor, params: readonly Tensor[]): void } | null;
}

export interface TrainingStepResult {
  /** The learning rate this step used. */
  lr: number;
  /** batch · batch_mul_avg: what the counter advances by (floored by the caller, as the official int()). */
  imagesPerStep: number;
  /** Some gradient held NaN/Inf and was replaced. */
  nonFiniteGradients: boolean;
  /** Milliseconds the step waited, after backward, for the gradients' mean over the ranks (0 in one process). */
  syncMs: number;
  /** The step's accumulation rounds, in order. */
  rounds: Round[];
}

/** One accumulation round: its patch size, the images it drew and its mean loss (NaN/Inf possible). */
export interface Round {
  patchSize: number;
  images: number;
  lossMean: number;
}

export function trainingStep(a: TrainingStepArgs): TrainingStepResult {
  const rounds = accumulateGradients(a);
  const started = performance.now();
  a.dist?.averageGradients(a.components.netParams);
  const syncMs = a.dist ? performance.now() - started : 0;
  return { ...applyGradients(a), syncMs, rounds };
}

/** The step's forward and backward passes: the gradients of this process's share of the batch. */
export function accumulateGradients(a: TrainingStepArgs): Round[] {
  const { options: o, components: c, curNimg, totalNimg } = a;
  // In a data-parallel run `batch` is the global batch: each rank runs batch / world / batchGpu rounds.
  const rounds = o.batch / c.worldSize / o.batchGpu;
  zeroGrad(c.netParams);
  const done: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    const patchSize = a.patchSize ?? c.patches.choose(curNimg, totalNimg);
    const batchMul = c.patches.batchMul(patchSize);
    const n = o.batchGpu * batchMul;
    const lossMean = scope(() => {
      const batch = c.batches.nextBatch(n);
      const loss = c.lossFn(batch.images, batch.labels, patchSize);
      // Sum over pixels per sample, averaged over samples of the whole step (as in the official training_loop.py).
      const total = reducePatchLoss(loss, o.batch / c.worldSize, batchMul, o.lossScaling ?? 1);
      if (r === rounds - 1 && a.dist?.backward) a.dist.backward(total, c.netParams);
      else total.backward();
      return loss.mean().item();
    });
    const round = { patchSize, images: n, lossMean };
    done.push(round);
    a.onRound?.(round);
  }
  return done;
}

/** Everything after the gradients: learning rate, NaN/Inf scrubbing, Adam, EMA. */
export function applyGradients(a: TrainingStepArgs): Omit<TrainingStepResult, 'syncMs' | 'rounds'> {
  const { options: o, components: c, curNimg, totalNimg } = a;  // The counter, LR ramp and EMA advance by batch · batch_mul_avg patch samples (as in the official training_loop.py).
  const imagesPerStep = o.batch * c.patches.batchMulAvgAt(curNimg, totalNimg);
  const lr = learningRate(o.lr, curNimg, o.lrRampup);
  const nonFiniteGradients = sanitizeGradients(c.netParams) > 0;
  c.adam.step(lr);
  emaUpdate(c.emaParams, c.netParams, emaBeta(curNimg, imagesPerStep, o.ema * 1000, o.emaRampup));
  return { lr, imagesPerStep, nonFiniteGradients };
}
