// Noise-level embeddings: sinusoidal (DDPM++ with endpoint = true, ADM with
// endpoint = false) and random Fourier features (NCSN++; buffer `freqs`).
// Both map x [N] to [N, C] laid out as [cos(x·f), sin(x·f)].
import { Module } from './module.js';
import { asDType } from './dtype.js';
import type { RandomInit } from './init.js';
import { arange, cat, full, outer, zeros } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

function checkInput(x: Tensor, what: string): void {
  if (x.ndim !== 1) throw new Error(`${what}: expects a 1-D tensor of noise labels [N], got [${x.shape}]`);
}

export interface PositionalEmbeddingOptions {
  maxPositions?: number;
  endpoint?: boolean;
}

export class PositionalEmbedding extends Module {
  readonly numChannels: number;
  readonly maxPositions: number;
  readonly endpoint: boolean;

  constructor(numChannels: number, options: PositionalEmbeddingOptions = {}) {
    super();
    const endpoint = options.endpoint ?? false;
    if (!Number.isInteger(numChannels) || numChannels < 2 || numChannels % 2 !== 0 || (endpoint && numChannels < 4))
      throw new Error(`PositionalEmbedding: needs an even channel count${endpoint ? ' ≥ 4 (endpoint)' : ''}, got ${numChannels}`);
    this.numChannels = numChannels;
    this.maxPositions = options.maxPositions ?? 10000;
    this.endpoint = endpoint;
  }

  /** freq_k = (1/maxPositions)^(k / (C/2 − [endpoint])), k = 0..C/2−1, in float32. */
  frequencies(): Tensor {
    const half = this.numChannels / 2;
    return scope(() => {
      const k = arange(0, half, 1, { dtype: 'float32' }).div(half - (this.endpoint ? 1 : 0));
      return full([half], 1 / this.maxPositions).pow(k);
    });
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'PositionalEmbedding');
    return scope(() => {
      const f = this.frequencies();
      const freqs = x.device === 'cpu' ? f : f.to({ device: x.device });
      const xf = outer(x, asDType(freqs, x.dtype));
      return cat([xf.cos(), xf.sin()], 1);
    });
  }
}

export interface FourierEmbeddingOptions extends RandomInit {
  /** Standard deviation of the random frequencies (default 16). */
  scale?: number;
}

export class FourierEmbedding extends Module {
  readonly numChannels: number;
  readonly freqs: Tensor;

  constructor(numChannels: number, options: FourierEmbeddingOptions = {}) {
    super();
    if (!Number.isInteger(numChannels) || numChannels < 2 || numChannels % 2 !== 0)
      throw new Error(`FourierEmbedding: needs an even channel count, got ${numChannels}`);
    this.numChannels = numChannels;
    const scale = options.scale ?? 16;
    let freqs: Tensor;
    if (options.initialize === false) freqs = zeros([numChannels / 2]);
    else {
      const g = options.generator;
      if (!g) throw new Error('FourierEmbedding: a Generator is required to draw the frequencies (pass { generator } or initialize: false)');
      freqs = scope(() => g.randn([numChannels / 2]).mul(scale));
    }
    this.freqs = this.registerBuffer('freqs', freqs);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'FourierEmbedding');
    return scope(() => {
      const xf = outer(x, asDType(this.freqs.mul(2 * Math.PI), x.dtype));
      return cat([xf.cos(), xf.sin()], 1);
    });
  }
}
