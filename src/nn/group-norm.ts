// Group normalisation as EDM's GroupNorm: affine (weight = 1, bias = 0 at
// init) with num_groups = min(numGroups, C // minChannelsPerGroup).
import { Module } from './module.js';
import { asDType } from './dtype.js';
import { groupNormInFloat32, type Precision, type PrecisionAware } from './precision.js';
import * as F from '../tensor/functional.js';
import { ones, zeros } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface GroupNormOptions {
  /** Upper bound on the number of groups (default 32). */
  numGroups?: number;
  /** Minimum channels per group (default 4). */
  minChannelsPerGroup?: number;
  /** Default 1e-5 (SongUNet passes 1e-6). */
  eps?: number;
}

/** EDM's group count rule: min(numGroups, C // minChannelsPerGroup). */
export function groupCount(channels: number, numGroups = 32, minChannelsPerGroup = 4): number {
  return Math.min(numGroups, Math.floor(channels / minChannelsPerGroup));
}

export class GroupNorm extends Module implements PrecisionAware {
  readonly numChannels: number;
  readonly numGroups: number;
  readonly eps: number;
  readonly weight: Tensor;
  readonly bias: Tensor;
  /** Normalise in float32 whatever the input dtype (bf16; see precision.ts). */
  #float32 = false;

  constructor(numChannels: number, options: GroupNormOptions = {}) {
    super();
    const groups = groupCount(numChannels, options.numGroups ?? 32, options.minChannelsPerGroup ?? 4);
    if (groups < 1 || numChannels % groups !== 0)
      throw new Error(
        `GroupNorm: ${numChannels} channels cannot be normalised: EDM uses min(32, C // 4) = ${groups} groups, ` +
          `which needs C ≥ 4 and C divisible by the group count`,
      );
    this.numChannels = numChannels;
    this.numGroups = groups;
    this.eps = options.eps ?? 1e-5;
    this.weight = this.registerParameter('weight', ones([numChannels]));
    this.bias = this.registerParameter('bias', zeros([numChannels]));
  }

  forward(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels)
      throw new Error(`GroupNorm: expected ${this.numChannels} channels, got input of shape [${x.shape}]`);
    return scope(() => {
      const xs = this.#float32 ? asDType(x, 'float32') : x;
      return F.groupNorm(xs, this.numGroups, asDType(this.weight, xs.dtype), asDType(this.bias, xs.dtype), this.eps);
    });
  }

  setPrecision(precision: Precision): void {
    this.#float32 = groupNormInFloat32(precision);
  }
}
