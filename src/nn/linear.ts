// Fully-connected layer with EDM's parameter names (weight [out, in], bias [out])
// and initialisation.
import { Module } from './module.js';
import { initTensor, type InitOptions, type RandomInit } from './init.js';
import { asDType } from './dtype.js';
import * as F from '../tensor/functional.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LinearOptions extends InitOptions, RandomInit {
  /** Default true. */
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    if (!Number.isInteger(inFeatures) || inFeatures < 1 || !Number.isInteger(outFeatures) || outFeatures < 1)
      throw new Error(`Linear: feature counts must be positive integers, got in=${inFeatures} out=${outFeatures}`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const mode = options.initMode ?? 'kaiming_normal';
    this.weight = this.registerParameter(
      'weight',
      initTensor([outFeatures, inFeatures], mode, inFeatures, outFeatures, options.initWeight ?? 1, options, 'Linear'),
    );
    this.bias =
      options.bias === false
        ? null
        : this.registerParameter('bias', initTensor([outFeatures], mode, inFeatures, outFeatures, options.initBias ?? 0, options, 'Linear'));
  }

  /** x [..., in] → [..., out]. */
  forward(x: Tensor): Tensor {
    const last = x.shape[x.ndim - 1];
    if (last !== this.inFeatures) throw new Error(`Linear: expected ${this.inFeatures} input features, got input of shape [${x.shape}]`);
    return scope(() => F.linear(x, asDType(this.weight, x.dtype), this.bias ? asDType(this.bias, x.dtype) : null));
  }
}
