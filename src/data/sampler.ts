// Training-time data order and batch assembly.
//
// The sampler is an endless stream of dataset indices: epoch after epoch, each
// a fresh seeded permutation. With x-flip the index space is doubled (EDM
// --xflip): index >= length means "the mirrored copy of index - length".
//
// Its whole state is {seed, size, position, ...}: epoch e's permutation is a
// pure function of (seed, e), so resuming rebuilds it instead of storing it.
// That keeps checkpoints tiny and resume exact. (EDM's InfiniteSampler uses a
// random-swap walk whose state is the whole order array; we trade that for
// plain per-epoch reshuffles, which give each image once per epoch.)
import type { ImageDataset } from './dataset.js';
import { flipX } from './dataset.js';
import { permutation } from './rng.js';

/** `InfiniteSampler`'s settings: the seed, x-flip, shuffling and this process's share. */
export interface SamplerOptions {
  /** Seed of the epoch permutations (default 0). */
  seed?: number;
  /** Double the dataset with horizontally mirrored copies. Default false. */
  xflip?: boolean;
  /** Shuffle each epoch (default true); false walks 0..size-1 in order. */
  shuffle?: boolean;
  /** For multi-process training: this process takes stream items k with k % worldSize === rank. */
  rank?: number;
  /** Processes in the run (default 1). */
  worldSize?: number;
}

/** Everything needed to continue the exact same stream. JSON-serialisable. */
export interface SamplerState {
  readonly version: 1;
  readonly seed: number;
  /** Dataset length before x-flip. */
  readonly length: number;
  readonly xflip: boolean;
  readonly shuffle: boolean;
  readonly rank: number;
  readonly worldSize: number;
  /** Index of the next item in the global (all-ranks) stream that this rank's next draw starts from. */
  readonly position: number;
}

function nonNegInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${String(v)}`);
  return v;
}

/**
 * The endless stream of dataset indices training reads: epoch after epoch, each a seeded permutation (doubled
 * with x-flip). Its state is a few numbers, so a resume rebuilds the order exactly.
 */
export class InfiniteSampler {
  readonly length: number;
  /** Index space: length, or 2*length with x-flip. */
  readonly size: number;
  readonly seed: number;
  readonly xflip: boolean;
  readonly shuffle: boolean;
  readonly rank: number;
  readonly worldSize: number;
  private position = 0;
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);

  constructor(length: number, options: SamplerOptions = {}) {
    this.length = nonNegInt(length, 'sampler length');
    if (length < 1) throw new RangeError('sampler: the dataset is empty');
    this.seed = nonNegInt(options.seed ?? 0, 'sampler seed');
    this.xflip = options.xflip ?? false;
    this.shuffle = options.shuffle ?? true;
    this.worldSize = nonNegInt(options.worldSize ?? 1, 'worldSize');
    this.rank = nonNegInt(options.rank ?? 0, 'rank');
    if (this.worldSize < 1 || this.rank >= this.worldSize) throw new RangeError(`sampler: need 0 <= rank < worldSize, got rank ${this.rank}, worldSize ${this.worldSize}`);
    this.size = this.xflip ? 2 * length : length;
  }

  /** Item k of the global stream. */
  private at(k: number): number {
    const epoch = Math.floor(k / this.size);
    if (epoch !== this.epoch) {
      // Stream = epoch, so every epoch is an independent shuffle of the seed.
      this.order = this.shuffle ? permutation(this.size, this.seed, epoch) : Uint32Array.from({ length: this.size }, (_, i) => i);
      this.epoch = epoch;
    }
    return this.order[k - epoch * this.size]!;
  }

  /** The next index for this rank (in [0, size)). */
  next(): number {
    const idx = this.at(this.position + this.rank);
    this.position += this.worldSize;
    return idx;
  }

  /** The next n indices. */
  nextBatch(n: number): Uint32Array {
    nonNegInt(n, 'batch size');
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next();
    return out;
  }

  /** Completed passes over the index space (by this rank's position). */
  get epochsDone(): number {
    return this.position / this.size;
  }

  getState(): SamplerState {
    return {
      version: 1,
      seed: this.seed,
      length: this.length,
      xflip: this.xflip,
      shuffle: this.shuffle,
      rank: this.rank,
      worldSize: this.worldSize,
      position: this.position,
    };
  }

  /**
   * Continue from a saved state. The state must come from a sampler with the
   * same settings (seed, dataset length, x-flip, shuffle, world size): resuming
   * onto a different dataset would silently change the data order, so refuse.
   */
  setState(state: SamplerState): void {
    if (typeof state !== 'object' || state === null || state.version !== 1) throw new TypeError('sampler.setState: not a version-1 sampler state');
    const mismatches: string[] = [];
    for (const key of ['seed', 'length', 'xflip', 'shuffle', 'worldSize'] as const) {
      if (state[key] !== this[key]) mismatches.push(`${key} ${String(state[key])} (saved) vs ${String(this[key])} (now)`);
    }
    if (mismatches.length > 0) throw new Error(`sampler.setState: the saved state is for different settings: ${mismatches.join(', ')}`);
    this.position = nonNegInt(state.position, 'sampler position');
  }

  static fromState(state: SamplerState, rank?: number): InfiniteSampler {
    const s = new InfiniteSampler(state.length, {
      seed: state.seed,
      xflip: state.xflip,
      shuffle: state.shuffle,
      worldSize: state.worldSize,
      rank: rank ?? state.rank,
    });
    s.setState(state);
    return s;
  }
}

/** One batch of training data: the images as bytes and their labels. */
export interface Batch {
  /** N images, CHW each, back to back: N*C*R*R bytes. */
  readonly images: Uint8Array;
  /** N*labelDim floats, or null for an unlabelled dataset. */
  readonly labels: Float32Array | null;
}

/**
 * Copy the images (mirrored for indices >= ds.length) and labels of `indices`
 * into one batch. Flipped copies keep their original label.
 */
export function fillBatch(ds: ImageDataset, indices: ArrayLike<number>): Batch {
  const n = indices.length;
  const size = ds.channels * ds.resolution * ds.resolution;
  const images = new Uint8Array(n * size);
  const labels = ds.labelDim > 0 ? new Float32Array(n * ds.labelDim) : null;
  for (let i = 0; i < n; i++) {
    let idx = indices[i]!;
    if (!Number.isInteger(idx) || idx < 0 || idx >= 2 * ds.length) throw new RangeError(`fillBatch: index ${idx} out of range [0, ${2 * ds.length})`);
    const flip = idx >= ds.length;
    if (flip) idx -= ds.length;
    const dst = images.subarray(i * size, (i + 1) * size);
    if (flip) flipX(ds.image(idx), ds.channels, ds.resolution, dst);
    else dst.set(ds.image(idx));
    if (labels) {
      const l = ds.label(idx);
      if (l) labels.set(l, i * ds.labelDim);
    }
  }
  return { images, labels };
}

/** fillBatch bound to a dataset: `(indices) => { images, labels }`. */
export function batchFiller(ds: ImageDataset): (indices: ArrayLike<number>) => Batch {
  return (indices) => fillBatch(ds, indices);
}

/** A sampler and filler together: `next(n)` gives the next batch of n. */
export class BatchLoader {
  readonly sampler: InfiniteSampler;

  constructor(
    readonly dataset: ImageDataset,
    options: SamplerOptions = {},
  ) {
    this.sampler = new InfiniteSampler(dataset.length, options);
  }

  next(batchSize: number): Batch & { indices: Uint32Array } {
    const indices = this.sampler.nextBatch(batchSize);
    return { ...fillBatch(this.dataset, indices), indices };
  }

  getState(): SamplerState {
    return this.sampler.getState();
  }

  setState(state: SamplerState): void {
    this.sampler.setState(state);
  }
}
