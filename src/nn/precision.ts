// Mixed precision for training and sampling: with 'bf16', convolutions and
// matrix products (Conv2d, Linear, and attention's v·w product) take bfloat16
// inputs and weights and give bfloat16 outputs, as torch.autocast does on the
// CPU, while group norms compute in float32 (their inputs are cast up), and
// everything outside the UNet (σ arithmetic, the preconditioner's skip mix,
// the loss, Adam's moments, the float32 master weights, the sampler's float64
// state) stays as it is. Casts are autograd ops, so gradients reach the
// float32 weights in float32. Written here rather than through libtorch's
// autocast so that the same ops are cast on libtorch 1.x and 2.x (their
// autocast op lists differ, and 1.13's casts group_norm down).
import type { DType } from '../tensor/tensor.js';
import { engineInfo } from '../tensor/runtime.js';
import type { Module } from './module.js';

export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** A layer whose arithmetic dtype the precision setting decides. */
export interface PrecisionAware {
  setPrecision(precision: Precision): void;
}

function isPrecisionAware(m: Module): m is Module & PrecisionAware {
  return typeof (m as Partial<PrecisionAware>).setPrecision === 'function';
}

/** The dtype matrix products run in under `precision` (null: the input's own dtype). */
export function matmulDtype(precision: Precision): DType | null {
  return precision === 'bf16' ? 'bfloat16' : null;
}

/** Sets `precision` on every layer of `root` (root included) that has one. */
export function applyPrecision(root: Module, precision: Precision): void {
  const visit = (m: Module) => {
    if (isPrecisionAware(m)) m.setPrecision(precision);
    for (const [, child] of m.children()) visit(child);
  };
  visit(root);
}

/**
 * Refuses bf16 on a CPU without bfloat16 arithmetic (AVX512-BF16 or AMX):
 * libtorch would emulate it in float32 and run slower than fp32, the
 * opposite of what was asked. PD_BF16_EMULATED=1 runs it anyway (tests, or
 * to check results on such a machine).
 */
export function checkPrecisionSupport(precision: Precision, device: string): void {
  if (precision !== 'bf16' || !device.startsWith('cpu') || process.env.PD_BF16_EMULATED === '1') return;
  const e = engineInfo();
  if (e.avx512Bf16 || e.amxBf16) return;
  throw new Error(
    `--precision bf16: this CPU (${e.cpuModel}) has no bfloat16 arithmetic (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo); ` +
      'libtorch would emulate it and run slower than fp32. Use --precision fp32, or set PD_BF16_EMULATED=1 to run it anyway.',
  );
}
