// 2-D convolution with optional 2× up- or down-sampling through a fixed FIR
// filter, as EDM's Conv2d: parameters `weight` [out, in, k, k] and `bias`
// [out], and the buffer `resample_filter` [1, 1, f, f] (present only when the
// layer resamples). kernel = 0 makes a pure resampling layer with no weights.
//
// Resampling semantics (f = outer(filter, filter) / sum(filter)²):
// - down: depthwise conv with f, stride 2, padding (f−1)//2, then the k×k conv;
// - up: depthwise transposed conv with 4·f, stride 2, padding (f−1)//2, then the conv;
// - fused (fusedResample): down = the k×k conv with padding k//2 + (f−1)//2
//   followed by the stride-2 filter conv without padding; up = the transposed
//   filter conv with padding max(fpad − wpad, 0) followed by the conv with
//   padding max(wpad − fpad, 0).
import { Module } from './module.js';
import { initTensor, type InitOptions, type RandomInit } from './init.js';
import { asDType } from './dtype.js';
import { matmulDtype, type Precision, type PrecisionAware } from './precision.js';
import * as F from '../tensor/functional.js';
import { outer, tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { DType, Tensor } from '../tensor/tensor.js';

export interface Conv2dOptions extends InitOptions, RandomInit {
  /** Default true (ignored when kernel = 0). */
  bias?: boolean;
  up?: boolean;
  down?: boolean;
  /** 1-D resampling filter taps; default [1, 1]. Even length. */
  resampleFilter?: readonly number[];
  fusedResample?: boolean;
}

/** The 2-D resampling filter: outer(f, f) / sum(f)², shape [1, 1, n, n]. */
export function makeResampleFilter(taps: readonly number[]): Tensor {
  if (taps.length < 2 || taps.length % 2 !== 0 || taps.some((v) => !Number.isFinite(v)))
    throw new Error(`resample_filter must be an even number (≥ 2) of finite taps, such as [1,1] or [1,3,3,1]; got [${taps}]`);
  const total = taps.reduce((a, b) => a + b, 0);
  if (total === 0) throw new Error(`resample_filter [${taps}] sums to 0`);
  return scope(() => {
    const f = tensor([...taps]);
    return outer(f, f).div(total * total).reshape(1, 1, taps.length, taps.length);
  });
}

export class Conv2d extends Module implements PrecisionAware {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly up: boolean;
  readonly down: boolean;
  readonly fusedResample: boolean;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly resampleFilter: Tensor | null;
  /**
   * The filter is [1, 1] (DDPM++'s and ADM's): its depthwise stride-2 conv is
   * a 2×2 average pool, and its transposed conv with 4·f a nearest-neighbour
   * 2× upsampling, the same numbers (×0.25 and ×1 are exact) from kernels
   * that are several times faster than libtorch's depthwise convolutions,
   * whose bf16 path is slower still.
   */
  readonly #boxFilter: boolean;
  /** The dtype the convolutions run in (null: the input's; see precision.ts). */
  #computeDtype: DType | null = null;

  constructor(inChannels: number, outChannels: number, kernel: number, options: Conv2dOptions = {}) {
    super();
    const up = options.up ?? false;
    const down = options.down ?? false;
    if (up && down) throw new Error('Conv2d: up and down cannot both be set');
    if (!Number.isInteger(inChannels) || inChannels < 1 || !Number.isInteger(outChannels) || outChannels < 1)
      throw new Error(`Conv2d: channel counts must be positive integers, got in=${inChannels} out=${outChannels}`);
    if (!Number.isInteger(kernel) || kernel < 0) throw new Error(`Conv2d: kernel must be a non-negative integer, got ${kernel}`);
    if (kernel === 0 && !(up || down)) throw new Error('Conv2d: kernel 0 (no weights) only makes sense for a resampling layer');
    if (kernel === 0 && inChannels !== outChannels)
      throw new Error(`Conv2d: a kernel-0 resampling layer keeps the channel count, got in=${inChannels} out=${outChannels}`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernel = kernel;
    this.up = up;
    this.down = down;
    this.fusedResample = options.fusedResample ?? false;
    const mode = options.initMode ?? 'kaiming_normal';
    const fanIn = inChannels * kernel * kernel;
    const fanOut = outChannels * kernel * kernel;
    this.weight = kernel
      ? this.registerParameter('weight', initTensor([outChannels, inChannels, kernel, kernel], mode, fanIn, fanOut, options.initWeight ?? 1, options, 'Conv2d'))
      : null;
    this.bias =
      kernel && options.bias !== false
        ? this.registerParameter('bias', initTensor([outChannels], mode, fanIn, fanOut, options.initBias ?? 0, options, 'Conv2d'))
        : null;
    const taps = options.resampleFilter ?? [1, 1];
    this.resampleFilter = up || down ? this.registerBuffer('resample_filter', makeResampleFilter(taps)) : null;
    this.#boxFilter = taps.length === 2 && taps[0] === taps[1];
  }

  setPrecision(precision: Precision): void {
    this.#computeDtype = matmulDtype(precision);
  }

  forward(input: Tensor): Tensor {
    if (input.ndim !== 4 || input.shape[1] !== this.inChannels)
      throw new Error(`Conv2d: expected input [N, ${this.inChannels}, H, W], got [${input.shape}]`);
    return scope(() => {
      // Mixed precision casts right before the weighted convolution; the
      // resampling filter (memory-bound) runs in the dtype it is given, but
      // never in bfloat16 as a depthwise conv: libtorch 1.13's bf16 depthwise
      // transposed convolution returns a quarter of the right size (8×8 in,
      // 4×4 out instead of 16×16), silently.
      const dtype = this.#computeDtype ?? input.dtype;
      const w = this.weight ? asDType(this.weight, dtype) : null;
      const b = this.bias ? asDType(this.bias, dtype) : null;
      const wPad = w ? Math.floor(w.shape[3]! / 2) : 0;
      const fPad = this.resampleFilter ? Math.floor((this.resampleFilter.shape[3]! - 1) / 2) : 0;
      const resampleInput = (x: Tensor) => (x.dtype === 'bfloat16' ? x.float() : x);
      const depthwise = (x: Tensor, channels: number, scale: number) => {
        const f = asDType(this.resampleFilter!, x.dtype);
        return (scale === 1 ? f : f.mul(scale)).repeat(channels, 1, 1, 1);
      };
      const weighted = (x: Tensor, padding: number, bias: Tensor | null) => F.conv2d(asDType(x, dtype), w!, bias, { padding });

      // The bias goes into the convolution that ends the layer (oneDNN adds
      // it in the same pass, and its gradient comes from the convolution's
      // backward); EDM adds it afterwards, the same sum up to rounding.
      let y = input;
      if (this.fusedResample && this.up && w) {
        y = resampleInput(y);
        y = F.convTranspose2d(y, depthwise(y, this.inChannels, 4), null, { groups: this.inChannels, stride: 2, padding: Math.max(fPad - wPad, 0) });
        return weighted(y, Math.max(wPad - fPad, 0), b);
      }
      if (this.fusedResample && this.down && w) {
        y = resampleInput(weighted(y, wPad + fPad, null));
        y = F.conv2d(y, depthwise(y, this.outChannels, 1), null, { groups: this.outChannels, stride: 2 });
        return b ? y.add(b.reshape(1, -1, 1, 1)) : y;
      }
      if (this.up) {
        if (this.#boxFilter) y = upsampleNearest2x(y);
        else {
          y = resampleInput(y);
          y = F.convTranspose2d(y, depthwise(y, this.inChannels, 4), null, { groups: this.inChannels, stride: 2, padding: fPad });
        }
      }
      if (this.down) {
        if (this.#boxFilter) y = F.avgPool2d(y, 2);
        else {
          y = resampleInput(y);
          y = F.conv2d(y, depthwise(y, this.inChannels, 1), null, { groups: this.inChannels, stride: 2, padding: fPad });
        }
      }
      return w ? weighted(y, wPad, b) : y;
    });
  }
}

/** Each pixel repeated into a 2×2 block. */
function upsampleNearest2x(x: Tensor): Tensor {
  return F.interpolate(x, [x.shape[2]! * 2, x.shape[3]! * 2], 'nearest');
}
