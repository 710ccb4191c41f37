// Autograd helpers around libtorch's own engine.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** Runs `fn` with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Whether autograd records ops now (torch.is_grad_enabled): false inside noGrad(). */
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** Drops the gradients of the given parameters (set to none, as torch's zero_grad). */
export function zeroGrad(params: readonly Tensor[]): void {
  native.zeroGrad(params.map((p) => p.handle));
}

/**
 * Replaces NaN/±Inf entries of the parameters' gradients in place (the
 * official training loop's nan_to_num: NaN→0, ±Inf→±1e5 by default) and
 * returns how many parameters had any.
 */
export function sanitizeGradients(params: readonly Tensor[], nan = 0, posinf = 1e5, neginf = -1e5): number {
  return native.gradNanToNum(params.map((p) => p.handle), nan, posinf, neginf);
}
