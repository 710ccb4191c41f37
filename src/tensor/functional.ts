// Neural-network functions (torch.nn.functional's subset that the networks,
// losses and metrics use). Each is one libtorch call.
import { native } from './native.js';
import { wrap, type DType, type Tensor } from './tensor.js';
import type { Generator } from './random.js';
import type { InterpolateMode } from './engine-types.js';
export type { InterpolateMode } from './engine-types.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** conv2d's settings, as torch.nn.functional.conv2d's; each pair is one number for both, or [height, width]. */
export interface Conv2dOptions {
  /** Step of the kernel over the input (default 1). */
  stride?: Pair;
  /** Zeros added on each side of the input (default 0). */
  padding?: Pair;
  /** Spacing between kernel taps (default 1). */
  dilation?: Pair;
  /** Channel groups convolved apart (default 1; the channel count for a depthwise convolution). */
  groups?: number;
}

/**
 * 2-D convolution, as torch.nn.functional.conv2d: x [N, C_in, H, W], weight [C_out, C_in / groups, kH, kW],
 * bias [C_out] or null → [N, C_out, H', W'], with H' = ⌊(H + 2·padding − dilation·(kH − 1) − 1) / stride⌋ + 1
 * (W' alike).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return wrap(
    native.conv2d(x.handle, weight.handle, bias?.handle ?? null, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1),
  );
}

/**
 * convTranspose2d's settings, as torch.nn.functional.conv_transpose2d's (stride, padding and dilation as
 * those of the convolution it transposes).
 */
export interface ConvTranspose2dOptions extends Conv2dOptions {
  /** Size added to one side of the output, to choose among the sizes a strided convolution maps to the same one (default 0). */
  outputPadding?: Pair;
}

/**
 * Transposed 2-D convolution (the gradient of conv2d with respect to its input), as
 * torch.nn.functional.conv_transpose2d: x [N, C_in, H, W], weight [C_in, C_out / groups, kH, kW], bias [C_out] or
 * null → [N, C_out, H', W'], with H' = (H − 1)·stride − 2·padding + dilation·(kH − 1) + outputPadding + 1 (W' alike).
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: ConvTranspose2dOptions = {}): Tensor {
  return wrap(
    native.convTranspose2d(
      x.handle, weight.handle, bias?.handle ?? null,
      pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.outputPadding ?? 0), o.groups ?? 1, pair(o.dilation ?? 1),
    ),
  );
}

/** x · weightᵀ + bias, as torch.nn.functional.linear: x [..., in], weight [out, in], bias [out] or null → [..., out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return wrap(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

/**
 * Group normalisation, as torch.nn.functional.group_norm: x [N, C, ...] with its C channels in `groups` groups
 * (C divisible by groups), each normalised to zero mean and unit variance over its channels and positions (biased
 * variance, + eps), then scaled by weight [C] and shifted by bias [C] when given.
 */
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return wrap(native.groupNorm(x.handle, groups, weight?.handle ?? null, bias?.handle ?? null, eps));
}

/**
 * Layer normalisation, as torch.nn.functional.layer_norm: each slice over the last dimensions (whose sizes are
 * `normalizedShape`) normalised to zero mean and unit variance (biased, + eps), then scaled by weight and shifted by
 * bias (both of `normalizedShape`) when given.
 */
export function layerNorm(x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return wrap(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}

/** batchNorm's tensors and settings, as torch.nn.functional.batch_norm's; the tensors are [C] and the caller's. */
export interface BatchNormOptions {
  /** Per-channel scale (default none: 1). */
  weight?: Tensor | null;
  /** Per-channel shift (default none: 0). */
  bias?: Tensor | null;
  /** Running mean: used when not training; updated in place when training. */
  runningMean?: Tensor | null;
  /** Running (unbiased) variance: used when not training; updated in place when training. */
  runningVar?: Tensor | null;
  /** Normalise with the batch's own statistics (and update the running ones) rather than the running ones (default false). */
  training?: boolean;
  /** Weight of the new batch in the running statistics' update (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}
/**
 * Batch normalisation, as torch.nn.functional.batch_norm: each channel of x [N, C, ...] normalised with the
 * batch's statistics over N and the positions (training) or with runningMean/runningVar (not training), then
 * scaled and shifted by weight and bias.
 */
export function batchNorm(x: Tensor, o: BatchNormOptions = {}): Tensor {
  return wrap(
    native.batchNorm(
      x.handle, o.weight?.handle ?? null, o.bias?.handle ?? null, o.runningMean?.handle ?? null, o.runningVar?.handle ?? null,
      o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5,
    ),
  );
}

/** exp(x) / Σ exp(x) along `dim`, computed stably (torch.softmax): each slice along `dim` sums to 1. */
export function softmax(x: Tensor, dim: number): Tensor {
  return wrap(native.softmax(x.handle, dim));
}
/** log(softmax(x)) along `dim`, computed stably (torch.nn.functional.log_softmax). */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return wrap(native.logSoftmax(x.handle, dim));
}
/** x · sigmoid(x), elementwise (torch.nn.functional.silu). */
export function silu(x: Tensor): Tensor {
  return wrap(native.silu(x.handle));
}
/** x · Φ(x), Φ the standard normal CDF: the exact (erf) form of torch.nn.functional.gelu, not the tanh approximation. */
export function gelu(x: Tensor): Tensor {
  return wrap(native.gelu(x.handle));
}
/** max(x, 0), elementwise (torch.relu). */
export function relu(x: Tensor): Tensor {
  return wrap(native.relu(x.handle));
}
/** x where x ≥ 0, else slope · x (torch.nn.functional.leaky_relu, default slope 0.01). */
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

/**
 * Resizes x [N, C, H, W] to [N, C, size[0], size[1]], as torch.nn.functional.interpolate(x, size, mode,
 * align_corners): `alignCorners` applies to the bilinear and bicubic modes.
 */
export function interpolate(x: Tensor, size: [number, number], mode: InterpolateMode = 'nearest', alignCorners = false): Tensor {
  return wrap(native.interpolate(x.handle, size, mode, alignCorners));
}

/**
 * Mean over kernel windows, as torch.nn.functional.avg_pool2d: x [N, C, H, W] → [N, C, H', W'] with
 * H' = ⌊(H + 2·padding − kernel) / stride⌋ + 1; `stride` defaults to the kernel; `countIncludePad` counts the
 * padding's zeros in each mean.
 */
export function avgPool2d(x: Tensor, kernel: Pair, stride: Pair = kernel, padding: Pair = 0, countIncludePad = true): Tensor {
  return wrap(native.avgPool2d(x.handle, pair(kernel), pair(stride), pair(padding), countIncludePad));
}
/**
 * Maximum over kernel windows, as torch.nn.functional.max_pool2d: x [N, C, H, W] → [N, C, H', W'] with
 * H' = ⌊(H + 2·padding − kernel) / stride⌋ + 1; `stride` defaults to the kernel, padding counts as −∞.
 */
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
/**
 * Mean over `size` (height, width) evenly spread regions, as torch.nn.functional.adaptive_avg_pool2d:
 * x [N, C, H, W] → [N, C, size[0], size[1]] whatever H and W are.
 */
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return wrap(native.adaptiveAvgPool2d(x.handle, pair(size)));
}

/** Pads the last dimensions: [left, right, top, bottom] as torch.nn.functional.pad. */
export function pad(x: Tensor, padding: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor {
  return wrap(native.pad(x.handle, padding, mode, value));
}

/** libtorch 2.x's fused attention is there (1.x: compose it from bmm and softmax). */
export function fusedAttentionAvailable(): boolean {
  return native.fusedAttentionAvailable();
}
/** softmax(q·kᵀ/√d)·v for q, k, v [B, H, L, d] → [B, H, L, d] (libtorch 2.x only: see fusedAttentionAvailable). */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return wrap(native.scaledDotProductAttention(q.handle, k.handle, v.handle));
}
