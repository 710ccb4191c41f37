// Weight initialisation as EDM's `weight_init`, with the random numbers drawn
// from an explicit Generator so that a network's initial weights are a pure
// function of its configuration and seed.
//
// The draws follow the official constructors' order and shapes (a bias is drawn
// even when its scale is 0, exactly as the official code does), so a Generator
// seeded with s consumes the same Mersenne-Twister stream as
// `torch.manual_seed(s)` followed by the official constructor on the CPU.
import { scope } from '../tensor/scope.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

export type InitMode = 'xavier_uniform' | 'xavier_normal' | 'kaiming_uniform' | 'kaiming_normal';

/** How a layer's weight and bias are initialised (EDM's init_mode / init_weight / init_bias). */
export interface InitOptions {
  /** Default 'kaiming_normal', as EDM's Linear and Conv2d. */
  initMode?: InitMode;
  /** Scale applied to the weight draw (default 1; 0 gives a zero weight, 1e-5 EDM's "init_zero" for SongUNet). */
  initWeight?: number;
  /** Scale applied to the bias draw (default 0). */
  initBias?: number;
}

/**
 * Where a layer's random numbers come from. `initialize: false` allocates
 * zero-filled tensors without drawing (for weights loaded right after, or for
 * counting parameters cheaply); then `generator` may be omitted.
 */
export interface RandomInit {
  generator?: Generator;
  initialize?: boolean;
}

/** Draws one tensor as EDM's weight_init(shape, mode, fan_in, fan_out). */
export function weightInit(shape: readonly number[], mode: InitMode, fanIn: number, fanOut: number, generator: Generator): Tensor {
  return scope(() => {
    switch (mode) {
      case 'xavier_uniform':
        return generator.rand(shape).mul(2).sub(1).mul(Math.sqrt(6 / (fanIn + fanOut)));
      case 'xavier_normal':
        return generator.randn(shape).mul(Math.sqrt(2 / (fanIn + fanOut)));
      case 'kaiming_uniform':
        return generator.rand(shape).mul(2).sub(1).mul(Math.sqrt(3 / fanIn));
      case 'kaiming_normal':
        return generator.randn(shape).mul(Math.sqrt(1 / fanIn));
      default:
        throw new Error(`invalid init mode '${String(mode)}'`);
    }
  });
}

/** weightInit(...)·scale, or zeros when `initialize` is false. */
export function initTensor(
  shape: readonly number[],
  mode: InitMode,
  fanIn: number,
  fanOut: number,
  scale: number,
  rng: RandomInit,
  what: string,
): Tensor {
  if (rng.initialize === false) return zeros(shape);
  if (!rng.generator) throw new Error(`${what}: a Generator is required to initialise weights (pass { generator } or initialize: false)`);
  const g = rng.generator;
  return scope(() => weightInit(shape, mode, fanIn, fanOut, g).mul(scale));
}

/**
 * A mutable holder of the generator that drives dropout and label dropout.
 * The network and all its blocks share one, so `setGenerator` on the network
 * re-routes every stochastic op at once.
 */
export class GeneratorRef {
  constructor(public generator: Generator | undefined) {}
  get(what: string): Generator {
    if (!this.generator) throw new Error(`${what}: no Generator for dropout; construct with { generator } or call setGenerator()`);
    return this.generator;
  }
}
