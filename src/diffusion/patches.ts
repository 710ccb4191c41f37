// Patch sampling (Wang et al. 2023, §3; the official training_loop.py and
// training/patch_loss.py): which patch size a micro-batch uses, how many
// images it draws, where each image is cropped, and the coordinate channels
// that tell the network where the crop came from.
import { cat, tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { coordinateValues } from './formulas.js';
import type { Generator } from '../tensor/random.js';
import { Tensor, type Device } from '../tensor/tensor.js';

// ---- patch-size schedule ------------------------------------------------------------------

/** 'pixel': sizes [R/4, R/2, R]; 'latent': [R/2, R] (the official latent-space variant). */
export type PatchMode = 'pixel' | 'latent';

/** How the patch size of each accumulation round is drawn (the official real_p and progressive settings). */
export interface PatchScheduleOptions {
  /** Training resolution R (the latent resolution in latent mode). */
  resolution: number;
  /** Probability of a full-size round, p ∈ [0, 1] (official default 0.5). */
  realP: number;
  /** 'pixel' (default) or 'latent' (see PatchMode). */
  mode?: PatchMode;
  /** Train from small to large patches instead of drawing sizes at random. */
  progressive?: boolean;
  /**
   * Every drawable patch size must be a multiple of this: the network
   * down-samples levels−1 times (8 for the 4-level DDPM++/ADM), so smaller or
   * odd sizes would not survive the U-Net. Default 1 (no constraint).
   */
  minPatchMultiple?: number;
  /** Default generator for the stochastic draw (can be overridden per call). */
  generator?: Generator;
}

/**
 * The patch-size distribution and batch multipliers of one training run.
 *
 * Batch multiplier rule: mul(s) = R / s, linear in the side ratio.
 * The official code looks up `BM[s] // BM[R]` in the table
 * {512:1, 256:2, 128:4, 64:16, 32:32, 16:64}. That yields 4/2/1 at R = 64
 * and 2/1 in latent mode (R = 32), the only settings the paper ran, and those
 * are exactly R/s. Elsewhere the table is wrong: R = 128 gives 8/4/1 and
 * R = 256 gives 8/2/1, which disagree with the hard-coded batch_mul_avg
 * weights [4, 2, 1] (so the image counter, LR ramp and EMA would count the
 * wrong number of samples), and R = 32 in pixel space raises a KeyError for
 * s = 8. R/s reproduces the official numbers where they are consistent,
 * is defined for every R, and keeps batch_mul_avg = Σ p·mul exactly equal to
 * the mean number of patch samples per batch slot. It is deliberately not the
 * area ratio (R/s)²: a 16×16 round at R = 64 processes 4·B patches, i.e. 1/4
 * of the pixels of a full round, which is where the paper's speed-up comes from.
 */
export class PatchSchedule {
  readonly resolution: number;
  readonly realP: number;
  readonly mode: PatchMode;
  readonly progressive: boolean;
  /** Patch sizes, smallest first: [R/4, R/2, R] or [R/2, R]. */
  readonly patchSizes: readonly number[];
  /** Probability of each size (same order). */
  readonly probabilities: readonly number[];
  /** Batch multiplier of each size (same order): R / s. */
  readonly batchMuls: readonly number[];
  readonly generator: Generator | undefined;
  readonly #cumulative: number[];

  constructor(o: PatchScheduleOptions) {
    const R = o.resolution;
    const p = o.realP;
    const mode = o.mode ?? 'pixel';
    const multiple = o.minPatchMultiple ?? 1;
    if (!Number.isInteger(R) || R <= 0) throw new Error(`patch schedule: resolution must be a positive integer, got ${R}`);
    if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new Error(`patch schedule: real_p must lie in [0, 1], got ${p}`);
    if (!Number.isInteger(multiple) || multiple < 1) throw new Error(`patch schedule: minPatchMultiple must be a positive integer, got ${multiple}`);
    const divisions = mode === 'pixel' ? 4 : 2;
    if (R % divisions !== 0)
      throw new Error(`patch schedule: resolution ${R} is not divisible by ${divisions}, so the ${mode}-mode patch size R/${divisions} is not an integer`);
    this.resolution = R;
    this.realP = p;
    this.mode = mode;
    this.progressive = o.progressive ?? false;
    this.generator = o.generator;
    // The official pmf (paper Eq. 5): p for the full image, the rest split 2:3 between R/4 and R/2.
    this.patchSizes = mode === 'pixel' ? [R / 4, R / 2, R] : [R / 2, R];
    this.probabilities = mode === 'pixel' ? [((1 - p) * 2) / 5, ((1 - p) * 3) / 5, p] : [1 - p, p];
    this.batchMuls = this.patchSizes.map((s) => R / s);
    for (let k = 0; k < this.patchSizes.length; k++) {
      const s = this.patchSizes[k]!;
      // A size that can never be drawn (probability 0) need not fit the network: real_p = 1 is plain EDM.
      if (this.probabilities[k]! > 0 && s % multiple !== 0)
        throw new Error(
          `patch schedule: patch size ${s} (R/${R / s} at resolution ${R}) is not a multiple of ${multiple}, which the network needs; ` +
            `use a resolution divisible by ${multiple * (R / s)} or real_p = 1`,
        );
    }
    let acc = 0;
    this.#cumulative = this.probabilities.map((q) => (acc += q));
  }

  /**
   * Mean number of patch samples per batch slot in stochastic mode, Σ p·mul:
   * 1.9 at p = 0.5 in pixel mode, 1.5 in latent mode. It drives the image
   * counter, the LR ramp and the EMA half-life (official training_loop.py).
   * In progressive mode use batchMulAvgAt(), which is the current size's
   * multiplier.
   */
  get batchMulAvg(): number {
    return this.probabilities.reduce((sum, q, k) => sum + q * this.batchMuls[k]!, 0);
  }

  /** The multiplier the official loop uses for counting at this point of training. */
  batchMulAvgAt(curNimg: number, totalNimg: number): number {
    return this.progressive ? this.batchMul(this.progressiveSize(curNimg, totalNimg)) : this.batchMulAvg;
  }

  /** How many `batch_gpu` minibatches a round with patch size s draws. */
  batchMul(patchSize: number): number {
    const k = this.patchSizes.indexOf(patchSize);
    if (k < 0) throw new Error(`patch size ${patchSize} is not in this schedule (${this.patchSizes.join(', ')})`);
    return this.batchMuls[k]!;
  }

  /**
   * One stochastic draw, as np.random.choice(patch_list, p=p_list): a uniform
   * u in [0, 1) picks the first size whose cumulative probability exceeds u.
   * One draw per micro-batch (accumulation round): all images of the round
   * share the size, each has its own crop offset.
   */
  sample(generator: Generator | undefined = this.generator): number {
    if (!generator) throw new Error('PatchSchedule.sample: no generator given');
    return this.sizeForUniform(scope(() => generator.rand([1], { dtype: 'float64' }).item()));
  }

  /** The size a uniform u ∈ [0, 1) selects (numpy's searchsorted(cdf/cdf[-1], u, 'right')). */
  sizeForUniform(u: number): number {
    const total = this.#cumulative[this.#cumulative.length - 1]!;
    for (let k = 0; k < this.patchSizes.length; k++) {
      if (this.probabilities[k]! > 0 && u < this.#cumulative[k]! / total) return this.patchSizes[k]!;
    }
    // Rounding can leave u ≥ the last cumulative value; the largest drawable size is the answer.
    for (let k = this.patchSizes.length - 1; k >= 0; k--) if (this.probabilities[k]! > 0) return this.patchSizes[k]!;
    return this.resolution;
  }

  /**
   * The progressive schedule: f = floor(cur_nimg / 1000) / total_kimg, and the
   * size is the first one with f ≤ cum[k], where cum is the cumulative pmf with
   * its last entry replaced by 10 (so the full size holds to the end). At
   * p = 0.5: R/4 while f ≤ 0.2, R/2 while f ≤ 0.5, then R.
   * Sizes of probability 0 are skipped (the official code would still pick
   * R/4 during the first kimg at p = 1, because f = 0 ≤ cum[0] = 0).
   */
  progressiveSize(curNimg: number, totalNimg: number): number {
    const totalKimg = totalNimg / 1000;
    const f = Math.floor(curNimg / 1000) / totalKimg;
    const last = this.patchSizes.length - 1;
    for (let k = 0; k <= last; k++) {
      const bound = k === last ? 10 : this.#cumulative[k]!;
      if (this.probabilities[k]! > 0 && f <= bound) return this.patchSizes[k]!;
    }
    return this.patchSizes[last]!;
  }

  /** The size for the next round: progressive by the counter, or a stochastic draw. */
  choose(curNimg: number, totalNimg: number, generator: Generator | undefined = this.generator): number {
    return this.progressive ? this.progressiveSize(curNimg, totalNimg) : this.sample(generator);
  }
}

// ---- coordinates ---------------------------------------------------------------------------

export { coordinateValues } from './formulas.js';

/**
 * Coordinate channels of crops: [N, 2, s, s] float32, channel 0 = x (column):
 * coord(j_n + b), channel 1 = y (row): coord(i_n + a), normalised over the
 * full resolution R (not over the patch).
 */
export function patchCoordinates(
  rowOffsets: Tensor | readonly number[],
  colOffsets: Tensor | readonly number[],
  patchSize: number,
  resolution: number,
  device: Device = 'cpu',
): Tensor {
  const rows = offsetList(rowOffsets);
  const cols = offsetList(colOffsets);
  if (rows.length !== cols.length) throw new Error(`patchCoordinates: ${rows.length} row offsets but ${cols.length} column offsets`);
  const n = rows.length;
  const s = patchSize;
  // Each crop's coordinates are a window of the 1-D table of R values; only
  // the [N, s] vectors are built here, the planes are broadcast on the device.
  const table = coordinateValues(0, resolution, resolution);
  const xv = new Float32Array(n * s);
  const yv = new Float32Array(n * s);
  for (let k = 0; k < n; k++) {
    xv.set(table.subarray(cols[k]!, cols[k]! + s), k * s);
    yv.set(table.subarray(rows[k]!, rows[k]! + s), k * s);
  }
  return scope(() => cat([tensor(xv, [n, 1, 1, s], { device }).expand(n, 1, s, s), tensor(yv, [n, 1, s, 1], { device }).expand(n, 1, s, s)], 1));
}

/** Where a sampling canvas sits in the coordinate grid, and its size. */
export interface GridOptions {
  /** Column index of the canvas' left edge in training-resolution pixels (may be negative). Default 0. */
  xStart?: number;
  /** Row index of the canvas' top edge. Default 0. */
  yStart?: number;
  /** Side of the canvas; default = resolution. Larger canvases extend beyond [−1, 1]. */
  imageSize?: number;
  device?: Device;
}

/**
 * The sampling-time coordinate grid of generate.py: [batch, 2, S, S] with
 * x = coord(x_start + col), y = coord(y_start + row) over `resolution`.
 * The same grid is used for every seed and every step.
 */
export function fullCoordinateGrid(batch: number, resolution: number, options: GridOptions = {}): Tensor {
  const size = options.imageSize ?? resolution;
  const xs = coordinateValues(options.xStart ?? 0, size, resolution);
  const ys = coordinateValues(options.yStart ?? 0, size, resolution);
  const plane = new Float32Array(2 * size * size);
  for (let a = 0; a < size; a++) {
    plane.set(xs, a * size);
    plane.fill(ys[a]!, size * size + a * size, size * size + (a + 1) * size);
  }
  return scope(() => {
    const grid = tensor(plane, [1, 2, size, size]).expand(batch, 2, size, size).contiguous();
    return options.device && options.device !== 'cpu' ? grid.to(options.device) : grid;
  });
}

// ---- crops -----------------------------------------------------------------------------------

/**
 * Where `pachify` crops each image: offsets drawn from a generator, as the official code draws them, or
 * given.
 */
export interface PachifyOptions {
  /** Draws the offsets: rows first, then columns, as the official torch.randint calls. */
  generator?: Generator;
  /** Explicit per-image row offsets i_n (tests, reference parity); overrides the generator. */
  rowOffsets?: Tensor | readonly number[];
  /** Explicit per-image column offsets j_n. */
  colOffsets?: Tensor | readonly number[];
}

/** `pachify`'s result: one crop per image with its coordinate channels and offsets. */
export interface PatchBatch {
  /** The crops, [N, C, s, s], same dtype and device as the images. */
  patches: Tensor;
  /** Their coordinate channels, [N, 2, s, s] float32. */
  xPos: Tensor;
  /** Row offsets i_n, one per image. */
  rowOffsets: number[];
  /** Column offsets j_n, one per image. */
  colOffsets: number[];
}

/**
 * Crops one s×s window per image at its own uniformly random offset (i_n, j_n)
 * ∈ [0, R − s]² inclusive, and builds the crops' coordinate channels.
 * patch[n, c, a, b] = image[n, c, i_n + a, j_n + b]. With s = R the offsets are
 * 0 and nothing is drawn (as the official code). The crop is two gathers
 * whatever N is (no per-image ops).
 */
export function pachify(images: Tensor, patchSize: number, options: PachifyOptions = {}): PatchBatch {
  if (images.ndim !== 4) throw new Error(`pachify: images must be [N, C, H, W], got [${images.shape}]`);
  const [n, c, h, w] = images.shape as [number, number, number, number];
  if (h !== w) throw new Error(`pachify: images must be square, got ${h}×${w}`);
  const R = h;
  const s = patchSize;
  if (!Number.isInteger(s) || s < 1 || s > R) throw new Error(`pachify: patch size ${s} must be an integer in [1, ${R}]`);

  let rows: number[];
  let cols: number[];
  if (options.rowOffsets !== undefined || options.colOffsets !== undefined) {
    if (options.rowOffsets === undefined || options.colOffsets === undefined) throw new Error('pachify: give both rowOffsets and colOffsets');
    rows = offsetList(options.rowOffsets);
    cols = offsetList(options.colOffsets);
    for (const [name, v] of [['row', rows], ['column', cols]] as const) {
      if (v.length !== n) throw new Error(`pachify: ${v.length} ${name} offsets for ${n} images`);
      if (v.some((o) => !Number.isInteger(o) || o < 0 || o > R - s)) throw new Error(`pachify: ${name} offsets [${v}] leave the range [0, ${R - s}]`);
    }
  } else if (s === R) {
    rows = new Array<number>(n).fill(0);
    cols = new Array<number>(n).fill(0);
  } else {
    if (!options.generator) throw new Error('pachify: a generator (or explicit offsets) is needed for s < R');
    // Same draws, same order as the official torch.randint(0, R − s + 1) calls: rows, then columns.
    rows = drawOffsets(options.generator, R - s, n);
    cols = drawOffsets(options.generator, R - s, n);
  }

  const device = images.device;
  const xPos = patchCoordinates(rows, cols, s, R, device);
  let patches: Tensor;
  if (s === R) {
    // A new handle on the same storage: no copy, and disposing it leaves `images` alive.
    patches = images.view(n, c, R, R);
  } else {
    // Two gathers: the rows i_n + a of each image ([N, C, s, R]), then the
    // columns j_n + b of those rows ([N, C, s, s]). The index tensors are
    // built from N·s integers and broadcast by expand (no copies).
    const rowIdx = new Int32Array(n * s);
    const colIdx = new Int32Array(n * s);
    for (let k = 0; k < n; k++) {
      for (let a = 0; a < s; a++) {
        rowIdx[k * s + a] = rows[k]! + a;
        colIdx[k * s + a] = cols[k]! + a;
      }
    }
    patches = scope(() => {
      const ri = tensor(rowIdx, [n, 1, s, 1]).to({ dtype: 'int64', device });
      const ci = tensor(colIdx, [n, 1, 1, s]).to({ dtype: 'int64', device });
      return images.gather(2, ri.expand(n, c, s, R)).gather(3, ci.expand(n, c, s, s));
    });
  }
  return { patches, xPos, rowOffsets: rows, colOffsets: cols };
}

function drawOffsets(generator: Generator, maxOffset: number, n: number): number[] {
  return scope(() => generator.randint(0, maxOffset + 1, [n]).toArray());
}

function offsetList(v: Tensor | readonly number[]): number[] {
  return v instanceof Tensor ? v.toArray() : [...v];
}
