// Mixed precision for training and sampling.
//
// 'bf16': convolutions and matrix products (Conv2d, Linear, and attention's
// v·w product) take bfloat16 inputs and weights and give bfloat16 outputs, as
// torch.autocast does on the CPU, while group norms compute in float32 (their
// inputs are cast up), and everything outside the UNet (σ arithmetic, the
// preconditioner's skip mix, the loss, Adam's moments, the float32 master
// weights, the sampler's float64 state) stays as it is. Written here rather
// than through libtorch's autocast so that the same ops are cast on libtorch
// 1.x and 2.x (their autocast op lists differ, and 1.13's casts group_norm down).
//
// 'fp16': the official --fp16 (use_fp16) on any device: the UNet's input is
// cast to float16 and every layer runs in its input's dtype, so the image
// path is float16 throughout, group norms included (weight and bias cast to
// float16, as EDM's GroupNorm casts them to x.dtype), and every saved
// activation is 2 bytes; the embedding path (noise, class and augment labels,
// the mapping layers) stays float32 and is cast down where it meets the image
// path; attention weights are computed in float32. For GPUs without bf16
// (V100, T4), with static loss scaling (--ls) against fp16's narrow range.
//
// Casts are autograd ops, so gradients reach the float32 weights in float32.
import type { DType } from '../tensor/tensor.js';
import { engineInfo, F, Generator, scope, zeros } from '../tensor/index.js';
import type { Module } from './module.js';

export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
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

/** The dtype the preconditioner gives the UNet its input in under `precision` (null: float32, or the snapshot's use_fp16 on CUDA). */
export function unetInputDtype(precision: Precision): DType | null {
  return precision === 'fp16' ? 'float16' : null;
}

/** Whether group norms cast their input up to float32 under `precision` (bf16), or normalise in the input's dtype (fp32; fp16 as the official code). */
export function groupNormInFloat32(precision: Precision): boolean {
  return precision === 'bf16';
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
 * Refuses bf16 or fp16 on a CPU without hardware arithmetic for it: libtorch
 * would emulate it and run slower than fp32, the opposite of what was asked
 * (fp16 convolutions without AVX512-FP16 or AMX-FP16 take a scalar path about
 * 40× slower than fp32: AMD EPYC, libtorch 2.13). PD_BF16_EMULATED=1 or
 * PD_FP16_EMULATED=1 runs it anyway (tests, or to check results on such a
 * machine).
 */
export function checkPrecisionSupport(precision: Precision, device: string): void {
  if (precision === 'fp32' || !device.startsWith('cpu')) return;
  const e = engineInfo();
  if (precision === 'bf16') {
    if (process.env.PD_BF16_EMULATED === '1' || e.avx512Bf16 || e.amxBf16) return;
    throw new Error(
      `--precision bf16: this CPU (${e.cpuModel}) has no bfloat16 arithmetic (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo); ` +
        'libtorch would emulate it and run slower than fp32. Use --precision fp32, or set PD_BF16_EMULATED=1 to run it anyway.',
    );
  }
  if (!cpuFloat16Kernels())
    throw new Error(
      `--precision fp16: this libtorch (${e.version}) has no float16 kernels on the CPU (Debian's 1.13 lacks float16 convolutions and ` +
        'dropout draws there); fp16 is for GPUs without bfloat16 (V100, T4): train on a GPU, or use --precision fp32 here.',
    );
  if (process.env.PD_FP16_EMULATED === '1' || e.avx512Fp16 || e.amxFp16) return;
  throw new Error(
    `--precision fp16: this CPU (${e.cpuModel}) has no float16 arithmetic (AVX512-FP16 or AMX-FP16 in /proc/cpuinfo); ` +
      'libtorch would run its float16 convolutions on a slow path, tens of times slower than fp32. fp16 is for GPUs without bfloat16 (V100, T4); ' +
      'on this CPU use --precision fp32, or set PD_FP16_EMULATED=1 to run it anyway.',
  );
}

let float16OnCpu: boolean | null = null;

/**
 * Whether this libtorch has the float16 CPU kernels fp16 needs: a convolution
 * and a dropout draw, tried once on tiny tensors. 2.x has them (slowly, without
 * AVX512-FP16); 1.13 has neither ("slow_conv2d_cpu not implemented for 'Half'").
 */
export function cpuFloat16Kernels(): boolean {
  float16OnCpu ??= scope(() => {
    try {
      const x = zeros([1, 1, 3, 3], { dtype: 'float16' });
      F.conv2d(x, zeros([1, 1, 3, 3], { dtype: 'float16' }));
      F.dropoutMask(x, 0.5, new Generator(0), 'float16');
      return true;
    } catch {
      return false;
    }
  });
  return float16OnCpu;
}
