// In-place updates of whole parameter lists that the layers above need and
// that have no per-tensor op: the optimizer's and the EMA's updates run fused
// in C++ (one call a step, not one per tensor), and replaceData swaps a
// parameter's storage the way PyTorch's `param.data = …` does.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

export interface AdamHyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * torch.optim.Adam's update (no amsgrad) of every parameter that has a
 * gradient, with its moments updated in place; `step` is the 1-based count
 * including this update.
 */
export function adamUpdate(params: readonly Tensor[], expAvg: readonly Tensor[], expAvgSq: readonly Tensor[], step: number, h: AdamHyperparameters): void {
  native.adamStep(
    params.map((p) => p.handle), expAvg.map((t) => t.handle), expAvgSq.map((t) => t.handle),
    step, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay,
  );
}

/** ema = net.lerp(ema, beta) for each pair, in place (the official EMA form: beta = 0 copies the network exactly). */
export function emaUpdate(ema: readonly Tensor[], net: readonly Tensor[], beta: number): void {
  native.emaUpdate(ema.map((t) => t.handle), net.map((t) => t.handle), beta);
}

/**
 * Gives `target` the data of `source` (storage, dtype and device) while it
 * stays the same tensor object, so every holder of the parameter sees the
 * change; `source` may be disposed afterwards.
 */
export function replaceData(target: Tensor, source: Tensor): void {
  native.setData(target.handle, source.handle);
}
