// Adam, as torch.optim.Adam (no amsgrad): the update itself runs fused in C++
// over all parameters; the moments live here as tensors so the optimizer
// state can be saved and restored exactly.
import { zerosLike } from '../tensor/creation.js';
import { adamUpdate } from '../tensor/parameter-updates.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Serialisable optimizer state: moments per parameter plus the step count. */
export interface AdamState {
  step: number;
  expAvg: Tensor[];
  expAvgSq: Tensor[];
}

export class Adam {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Number of updates taken so far. */
  stepCount = 0;
  readonly params: readonly Tensor[];
  readonly expAvg: Tensor[];
  readonly expAvgSq: Tensor[];

  constructor(params: readonly Tensor[], options: AdamOptions = {}) {
    this.params = params;
    this.lr = options.lr ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    for (const [name, v] of [['lr', this.lr], ['eps', this.eps], ['weightDecay', this.weightDecay]] as const)
      if (!(v >= 0)) throw new Error(`Adam: ${name} must be >= 0, got ${v}`);
    for (const [name, v] of [['beta1', this.beta1], ['beta2', this.beta2]] as const)
      if (!(v >= 0 && v < 1)) throw new Error(`Adam: ${name} must be in [0, 1), got ${v}`);
    this.expAvg = params.map((p) => keep(zerosLike(p)));
    this.expAvgSq = params.map((p) => keep(zerosLike(p)));
  }

  /** One update with the current gradients; `lr` may be given per step (learning-rate schedules). */
  step(lr: number = this.lr): void {
    this.stepCount += 1;
    adamUpdate(this.params, this.expAvg, this.expAvgSq, this.stepCount, { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay });
  }

  /** The live state (moments are the optimizer's own tensors: copy them before changing). */
  state(): AdamState {
    return { step: this.stepCount, expAvg: this.expAvg, expAvgSq: this.expAvgSq };
  }

  /** Restores moments and step count (values are copied into the existing tensors). */
  loadState(state: AdamState): void {
    if (state.expAvg.length !== this.params.length || state.expAvgSq.length !== this.params.length)
      throw new Error(`Adam.loadState: state has ${state.expAvg.length} moments, optimizer has ${this.params.length} parameters`);
    state.expAvg.forEach((t, k) => this.expAvg[k]!.copy_(t));
    state.expAvgSq.forEach((t, k) => this.expAvgSq[k]!.copy_(t));
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t.dispose();
  }
}

// The EMA of the weights belongs with the optimizer for the library's users (src/index.ts).
export { emaUpdate } from '../tensor/parameter-updates.js';
