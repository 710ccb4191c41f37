// Neural-network functions (torch.nn.functional's subset that the networks,
// losses and metrics use). Each is one libtorch call.
import { native } from './native.js';
import { wrap, type DType, type Tensor } from './tensor.js';
import type { Generator } from './random.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return wrap(
    native.conv2d(x.handle, weight.handle, bias?.handle ?? null, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1),
  );
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: Pair;
}

export function convTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: ConvTranspose2dOptions = {}): Tensor {
  return wrap(
    native.convTranspose2d(
      x.handle, weight.handle, bias?.handle ?? null,
      pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.outputPadding ?? 0), o.groups ?? 1, pair(o.dilation ?? 1),
    ),
  );
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return wrap(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export function groupNorm(x: Tensor, groups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return wrap(native.groupNorm(x.handle, groups, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export function layerNorm(x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return wrap(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
export function batchNorm(x: Tensor, o: BatchNormOptions = {}): Tensor {
  return wrap(
    native.batchNorm(
      x.handle, o.weight?.handle ?? null, o.bias?.handle ?? null, o.runningMean?.handle ?? null, o.runningVar?.handle ?? null,
      o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5,
    ),
  );
}

export function softmax(x: Tensor, dim: number): Tensor {
  return wrap(native.softmax(x.handle, dim));
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return wrap(native.logSoftmax(x.handle, dim));
}
export function silu(x: Tensor): Tensor {
  return wrap(native.silu(x.handle));
}
export function gelu(x: Tensor): Tensor {
  return wrap(native.gelu(x.handle));
}
export function relu(x: Tensor): Tensor {
  return wrap(native.relu(x.handle));
}
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return wrap(native.leakyRelu(x.handle, slope));
}

/**
 * Inverted dropout whose mask comes from `generator` (reproducible). p = 0
 * returns x itself. Backward keeps a 1-byte mask (native/dropout.cc).
 */
export function dropout(x: Tensor, p: number, generator: Generator): Tensor {
  return wrap(native.dropout(x.handle, p, generator.handle));
}

/**
 * The keep mask (1 = kept) that dropout(x, p, generator) would draw from the
 * generator in its present state, in `dtype`, unscaled; it advances the
 * generator as dropout would.
 */
export function dropoutMask(x: Tensor, p: number, generator: Generator, dtype: DType = 'bool'): Tensor {
  return wrap(native.dropoutMask(x.handle, p, generator.handle, dtype));
}

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic' | 'bilinear-antialias' | 'bicubic-antialias';
export function interpolate(x: Tensor, size: [number, number], mode: InterpolateMode = 'nearest', alignCorners = false): Tensor {
  return wrap(native.interpolate(x.handle, size, mode, alignCorners));
}

export function avgPool2d(x: Tensor, kernel: Pair, stride: Pair = kernel, padding: Pair = 0, countIncludePad = true): Tensor {
  return wrap(native.avgPool2d(x.handle, pair(kernel), pair(stride), pair(padding), countIncludePad));
}
export function maxPool2d(x: Tensor, kernel: Pair, stride: Pair = kernel, padding: Pair = 0): Tensor {
  return wrap(native.maxPool2d(x.handle, pair(kernel), pair(stride), pair(padding)));
}
/** The sampling grid [N, H, W, 2] of the affine maps theta [N, 2, 3] for an output of `size` [N, C, H, W] (torch's affine_grid). */
export function affineGrid(theta: Tensor, size: readonly [number, number, number, number], alignCorners = false): Tensor {
  return wrap(native.affineGrid(theta.handle, size, alignCorners));
}
/** Samples x [N, C, H, W] at grid [N, H', W', 2] (x, y in [−1, 1]) → [N, C, H', W'] (torch's grid_sample). */
export function gridSample(
  x: Tensor,
  grid: Tensor,
  mode: 'bilinear' | 'nearest' | 'bicubic' = 'bilinear',
  paddingMode: 'zeros' | 'border' | 'reflection' = 'zeros',
  alignCorners = false,
): Tensor {
  return wrap(native.gridSample(x.handle, grid.handle, mode, paddingMode, alignCorners));
}
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return wrap(native.adaptiveAvgPool2d(x.handle, pair(size)));
}

/** Pads the last dimensions: [left, right, top, bottom] as torch.nn.functional.pad. */
export function pad(x: Tensor, padding: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor {
  return wrap(native.pad(x.handle, padding, mode, value));
}

/** libtorch 2.x's fused attention is there (1.x: compose it from bmm and softmax). */
export function fusedAttentionAvailable(): boolean {
  return native.fusedAttentionAvailable() as boolean;
}
/** softmax(q·kᵀ/√d)·v for q, k, v [B, H, L, d] → [B, H, L, d] (libtorch 2.x only: see fusedAttentionAvailable). */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return wrap(native.scaledDotProductAttention(q.handle, k.handle, v.handle));
}
