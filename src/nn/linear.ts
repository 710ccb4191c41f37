// Fully-connected layer with EDM's parameter names (weight [out, in], bias [out])
// and initialisation.
import { Module } from './module.js';
import { initTensor, type InitOptions, type RandomInit } from './init.js';
import { asDType } from './dtype.js';
import { matmulDtype, type Precision, type PrecisionAware } from './precision.js';
import * as F from '../tensor/functional.js';
import { scope } from '../tensor/scope.js';
import type { DType, Tensor } from '../tensor/tensor.js';

export interface LinearOptions extends InitOptions, RandomInit {
  /** Default true. */
  bias?: boolean;
}

export class Linear extends Module implements PrecisionAware {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The dtype the product runs in (null: the input's; see precision.ts). */
  #computeDtype: DType | null = null;

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

  setPrecision(precision: Precision): void {
    this.#computeDtype = matmulDtype(precision);
  }

  /** x [..., in] → [..., out]. */
  forward(input: Tensor): Tensor {
    const last = input.shape[input.ndim - 1];
    if (last !== this.inFeatures) throw new Error(`Linear: expected ${this.inFeatures} input features, got input of shape [${input.shape}]`);
    return scope(() => {
      const x = this.#computeDtype ? asDType(input, this.#computeDtype) : input;
      return F.linear(x, asDType(this.weight, x.dtype), this.bias ? asDType(this.bias, x.dtype) : null);
    });
  }
}
