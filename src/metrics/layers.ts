// The few layers the feature networks need (Conv2d, BatchNorm2d, Linear),
// with PyTorch's state-dict names (`weight`, `bias`, `running_mean`,
// `running_var`) so weights exported from torch map 1:1 onto them.
import { Module } from '../nn/module.js';
import { F, ones, zeros, type Generator, type Tensor } from '../tensor/index.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  bias?: boolean;
  /** Draws the initial weights (He-normal); without it they start at zero. */
  generator?: Generator;
}

/** A plain 2-D convolution with PyTorch's parameter names, for the feature networks. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly padding: [number, number];

  constructor(readonly inChannels: number, readonly outChannels: number, kernel: Pair, options: Conv2dOptions = {}) {
    super();
    const [kh, kw] = pair(kernel);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    const fanIn = inChannels * kh * kw;
    const shape = [outChannels, inChannels, kh, kw];
    this.weight = this.registerParameter('weight', options.generator ? options.generator.randn(shape).mul_(Math.sqrt(2 / fanIn)) : zeros(shape));
    this.bias = options.bias ?? true ? this.registerParameter('bias', zeros([outChannels])) : null;
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

/**
 * Batch normalisation with PyTorch's parameter and buffer names (running_mean, running_var), for the feature
 * networks.
 */
export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;

  constructor(readonly channels: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.registerParameter('weight', ones([channels]));
    this.bias = this.registerParameter('bias', zeros([channels]));
    this.runningMean = this.registerBuffer('running_mean', zeros([channels]));
    this.runningVar = this.registerBuffer('running_var', ones([channels]));
  }

  /** Batch statistics (and a running-average update) in training mode, running statistics in eval mode. */
  forward(x: Tensor): Tensor {
    return F.batchNorm(x, {
      weight: this.weight, bias: this.bias, runningMean: this.runningMean, runningVar: this.runningVar,
      training: this.training, momentum: this.momentum, eps: this.eps,
    });
  }
}

/** A fully connected layer with PyTorch's parameter names, for the feature networks. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean; generator?: Generator; gain?: number } = {}) {
    super();
    const shape = [outFeatures, inFeatures];
    const std = (options.gain ?? Math.SQRT2) / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', options.generator ? options.generator.randn(shape).mul_(std) : zeros(shape));
    this.bias = options.bias ?? true ? this.registerParameter('bias', zeros([outFeatures])) : null;
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}
