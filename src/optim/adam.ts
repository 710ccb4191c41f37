// Adam, as torch.optim.Adam (no amsgrad): the update itself runs fused in C++
// over all parameters; the moments live here as tensors so the optimizer
// state can be saved and restored exactly.
import { zerosLike } from '../tensor/creation.js';
import { adamUpdate } from '../tensor/parameter-updates.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Adam's hyperparameters; the defaults are torch.optim.Adam's. */
export interface AdamOptions {
  /** Learning rate (default 1e-3); step() may override it per step. */
  lr?: number;
  /** Decay of the first-moment (mean) estimate, in [0, 1) (default 0.9). */
  beta1?: number;
  /** Decay of the second-moment estimate, in [0, 1) (default 0.999). */
  beta2?: number;
  /** Added to the second moment's square root in the denominator (default 1e-8). */
  eps?: number;
  /** L2 penalty added to the gradient, weightDecay · param, as torch.optim.Adam's (not AdamW's decoupled form; default 0). */
  weightDecay?: number;
}

/** Serialisable optimizer state: moments per parameter plus the step count. */
export interface AdamState {
  step: number;
  expAvg: Tensor[];
  expAvgSq: Tensor[];
}

/**
 * The Adam optimizer, as torch.optim.Adam (no amsgrad): step() updates, in place, every parameter that has a
 * gradient, in one fused native call; parameters without one are skipped. It owns its moments, zero tensors
 * shaped and placed like the parameters (expAvg, expAvgSq): dispose() frees them, not the parameters, which stay
 * their module's.
 */
export class Adam {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Number of updates taken so far. */
  stepCount = 0;
  /** The parameters it updates (the module's own tensors). */
  readonly params: readonly Tensor[];
  /** First-moment estimates, one per parameter (the optimizer's own). */
  readonly expAvg: Tensor[];
  /** Second-moment estimates, one per parameter (the optimizer's own). */
  readonly expAvgSq: Tensor[];

  /** Checks the hyperparameters (lr, eps, weightDecay ≥ 0; betas in [0, 1)) and makes the moments. */
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

  /** Frees the moments (the parameters are not the optimizer's to free). */
  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t.dispose();
  }
}

// The EMA of the weights belongs with the optimizer for the library's users (src/index.ts).
export { emaUpdate } from '../tensor/parameter-updates.js';
