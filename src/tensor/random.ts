// Seeded random numbers. Every draw names its generator, so a run is
// reproducible from its seeds. Draws happen on the CPU generator and are then
// moved to the target device, so a seed gives the same numbers on CPU and GPU.
import { native, type GeneratorHandle } from './native.js';
import { wrap, type Device, type DType, type Tensor } from './tensor.js';
import { tensor } from './creation.js';
import { tensorBytes } from './raw-bytes.js';
import { scope } from './scope.js';

/**
 * A seeded random-number source, as torch.Generator: every random draw in the package names one, so a run is
 * reproducible from its seeds. randn, rand, randint and randperm draw on the CPU and then move the result to the
 * device asked for, so a seed gives the same numbers on the CPU and on a GPU (and as PyTorch's CPU generator). The
 * tensors it returns are the caller's to free; the generator has no dispose(): the garbage collector frees it.
 */
export class Generator {
  /** @internal */
  readonly handle: GeneratorHandle;
  /** The seed it was made with (its state moves on with every draw: see getState). */
  readonly seed: number;

  /** A Mersenne-Twister generator as torch.Generator().manual_seed(seed): same seed, same numbers as PyTorch on CPU. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`Generator: seed must be a non-negative integer, got ${seed}`);
    this.seed = seed;
    this.handle = native.generatorCreate(seed);
  }

  /** The full generator state as bytes, for exact resume. */
  getState(): Uint8Array {
    return scope(() => tensorBytes(wrap(native.generatorGetState(this.handle))));
  }
  /** Restores a state from getState(), so the next draws are those that followed it. */
  setState(state: Uint8Array): void {
    scope(() => native.generatorSetState(this.handle, tensor(state, [state.length], { dtype: 'uint8' }).handle));
  }

  /** Standard normal draws. */
  randn(shape: readonly number[], options: { dtype?: DType; device?: Device } = {}): Tensor {
    return wrap(native.randn(this.handle, shape, options.dtype ?? 'float32', options.device));
  }
  /** Uniform draws in [0, 1). */
  rand(shape: readonly number[], options: { dtype?: DType; device?: Device } = {}): Tensor {
    return wrap(native.rand(this.handle, shape, options.dtype ?? 'float32', options.device));
  }
  /** Integers uniform in [low, high), int64. */
  randint(low: number, high: number, shape: readonly number[], options: { device?: Device } = {}): Tensor {
    return wrap(native.randint(this.handle, low, high, shape, options.device));
  }
  /** A random permutation of 0..n−1, int64. */
  randperm(n: number, options: { device?: Device } = {}): Tensor {
    return wrap(native.randperm(this.handle, n, options.device));
  }
}
