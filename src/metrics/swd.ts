// Sliced Wasserstein distance on Laplacian pyramids, the ProGAN recipe
// (Karras et al. 2018, tkarras/progressive_growing_of_gans
// metrics/sliced_wasserstein.py). Needs no network weights.
//
// - Laplacian pyramid with the 5×5 binomial kernel [1,4,6,4,1]ᵀ[1,4,6,4,1]/256
//   and mirror padding (scipy mode='mirror' = torch 'reflect', as cv2.pyrDown/
//   pyrUp); levels R, R/2, … while ≥ 16 (at least one level); each level is
//   image − pyrUp(pyrDown(image)), the last is the low-pass residual.
// - Per image and level, 128 random 7×7 neighbourhoods (centres uniform in
//   [3, W−4]), all channels → 49·C-dimensional descriptors (1 or 3 channels).
// - Per set and level, subtract the per-channel mean and divide by the
//   per-channel std over all descriptors of that set.
// - 4 repeats × 128 random unit directions: project both sets, sort, mean
//   |sortedA − sortedB|, averaged; ×10³. Reported per level and as the mean.
//
// Randomness: each level draws its neighbourhood positions from its own
// generator seeded from (seed, level), image by image, so image k of any set
// gets the same positions whatever the batching — and two sets evaluated with
// the same seed share positions (common random numbers: identical sets give
// exactly 0, and the estimate's variance drops). ProGAN drew them from one
// global stream; the distribution of each set's descriptors is the same.
// Directions come from generators seeded from (seed, 1000 + level).
//
// Cost: descriptors take N·128·49·C·4 bytes per level and set (10,000 RGB
// images: 750 MB per level); sorting the projections dominates the time (a JS
// radix sort; fd+kid+swd on 2,000 grey 32×32 images took 30–40 s on 2 shared cores).
import { F, Generator, Tensor, cat, keep, scope, tensor, arange, type Device } from '../tensor/index.js';
import { deriveSeed, imageArrayToTensor, sliceImages, type ImageArray } from './images.js';

/** SWD's settings (ProGAN's defaults): the seed, the neighbourhoods, the directions. */
export interface SwdOptions {
  /** Seed for positions and directions (default 0). */
  seed?: number;
  /** Neighbourhoods per image and level (default 128). */
  nhoodsPerImage?: number;
  /** Neighbourhood side (default 7). */
  nhoodSize?: number;
  /** Direction repeats (default 4). */
  dirRepeats?: number;
  /** Directions per repeat (default 128). */
  dirsPerRepeat?: number;
  /** Smallest pyramid level (default 16). */
  minResolution?: number;
  device?: Device;
}

/**
 * Sliced Wasserstein distance per level of the Laplacian pyramid (×10³, as ProGAN reports it), and their
 * mean.
 */
export interface SwdResult {
  /** Resolution of each pyramid level, finest first. */
  resolutions: number[];
  /** SWD ×10³ per level. */
  levels: number[];
  /** Mean of `levels`. */
  mean: number;
  /** Images per set. */
  count: number;
  seed: number;
}

const BINOMIAL = [1, 4, 6, 4, 1];

function gaussianKernel(channels: number, scale: number, device: Device): Tensor {
  const k = new Float32Array(25);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 5; x++) k[y * 5 + x] = (BINOMIAL[y]! * BINOMIAL[x]! * scale) / 256;
  return tensor(k, [1, 1, 5, 5], { device }).expand(channels, 1, 5, 5).contiguous();
}

/** cv2.pyrDown: blur with the binomial kernel (mirror padding), keep every other pixel. [B,C,H,W] float. */
export function pyrDown(x: Tensor): Tensor {
  return scope(() => {
    const c = x.shape[1]!;
    const padded = F.pad(x, [2, 2, 2, 2], 'reflect');
    return F.conv2d(padded, gaussianKernel(c, 1, x.device), null, { stride: 2, groups: c });
  });
}

/** cv2.pyrUp: zero-stuff to twice the size, blur with 4× the kernel (mirror padding); cropped to [h, w] when given. */
export function pyrUp(x: Tensor, size?: [number, number]): Tensor {
  return scope(() => {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const z = x.unsqueeze(-1);
    const cols = cat([z, z.mul(0)], -1).reshape(b, c, h, 2 * w);
    const r = cols.unsqueeze(3);
    let up = cat([r, r.mul(0)], 3).reshape(b, c, 2 * h, 2 * w);
    if (size && (size[0] !== 2 * h || size[1] !== 2 * w)) up = up.slice(2, 0, size[0]).slice(3, 0, size[1]);
    // The stuffed image is blurred with mirror padding, as scipy.ndimage.convolve(mode='mirror').
    const padded = F.pad(up, [2, 2, 2, 2], 'reflect');
    return F.conv2d(padded, gaussianKernel(c, 4, x.device), null, { groups: c });
  });
}

/** The pyramid's level resolutions for square images of side `resolution`. */
export function pyramidResolutions(resolution: number, minResolution = 16): number[] {
  const out: number[] = [];
  for (let r = resolution; r >= minResolution; r = Math.floor(r / 2)) out.push(r);
  return out.length ? out : [resolution];
}

/** Laplacian pyramid of float images [B,C,H,W]: `levels` tensors, finest first. */
export function laplacianPyramid(x: Tensor, levels: number): Tensor[] {
  return scope(() => {
    const pyramid: Tensor[] = [x];
    for (let i = 1; i < levels; i++) {
      const prev = pyramid[i - 1]!;
      const down = pyrDown(prev);
      pyramid[i - 1] = prev.sub(pyrUp(down, [prev.shape[2]!, prev.shape[3]!]));
      pyramid.push(down);
    }
    return pyramid;
  });
}

/**
 * Collects the raw (unnormalised) descriptors of one image set, batch by
 * batch; `finalize` normalises them per channel.
 */
export class SwdDescriptors {
  readonly resolutions: number[];
  readonly nhoodsPerImage: number;
  readonly nhoodSize: number;
  readonly device: Device;
  readonly seed: number;
  #count = 0;
  #levels: Tensor[][];
  #positionGenerators: Generator[];

  constructor(readonly resolution: number, readonly channels: number, options: SwdOptions = {}) {
    this.nhoodsPerImage = options.nhoodsPerImage ?? 128;
    this.nhoodSize = options.nhoodSize ?? 7;
    this.device = options.device ?? 'cpu';
    this.seed = options.seed ?? 0;
    if (this.nhoodSize % 2 !== 1) throw new RangeError(`SWD: neighbourhood size must be odd, got ${this.nhoodSize}`);
    if (resolution < this.nhoodSize) throw new RangeError(`SWD: images of ${resolution} px are smaller than the ${this.nhoodSize}×${this.nhoodSize} neighbourhood`);
    this.resolutions = pyramidResolutions(resolution, options.minResolution ?? 16).filter((r, k) => k === 0 || r >= this.nhoodSize);
    this.#levels = this.resolutions.map(() => []);
    this.#positionGenerators = this.resolutions.map((_, level) => new Generator(deriveSeed(this.seed, level)));
  }

  get count(): number {
    return this.#count;
  }

  /** Adds images [B, C, R, R] (uint8 0..255 or float on the same scale). */
  add(images: Tensor): void {
    const [b, c, h, w] = images.shape as [number, number, number, number];
    if (images.ndim !== 4 || c !== this.channels || h !== this.resolution || w !== this.resolution)
      throw new Error(`SWD: expected images [B, ${this.channels}, ${this.resolution}, ${this.resolution}], got [${images.shape}]`);
    const descs = scope(() => {
      const x = images.to({ dtype: 'float32', device: this.device });
      const pyramid = laplacianPyramid(x, this.resolutions.length);
      return pyramid.map((level, k) => this.#descriptors(level, this.#positionGenerators[k]!));
    });
    descs.forEach((d, k) => this.#levels[k]!.push(keep(d)));
    this.#count += b;
  }

  /** Adds images held as bytes, in chunks of `batchSize`. */
  addArray(images: ImageArray, batchSize = 256): void {
    for (let s = 0; s < images.count; s += batchSize) {
      scope(() => this.add(imageArrayToTensor(sliceImages(images, s, s + batchSize), this.device)));
    }
  }

  #descriptors(level: Tensor, generator: Generator): Tensor {
    const [b, c, h, w] = level.shape as [number, number, number, number];
    const n = this.nhoodsPerImage;
    const half = (this.nhoodSize - 1) / 2;
    const dev = this.device;
    // Centres uniform in [half, side − half − 1], x then y for each neighbourhood.
    const pos = generator.randint(half, h - half, [b, n, 2]).to({ device: dev });
    const px = pos.select(2, 0).reshape(b, n, 1, 1, 1);
    const py = pos.select(2, 1).reshape(b, n, 1, 1, 1);
    const img = arange(0, b, 1, { device: dev }).reshape(b, 1, 1, 1, 1);
    const chan = arange(0, c, 1, { device: dev }).reshape(1, 1, c, 1, 1);
    const offs = arange(-half, half + 1, 1, { device: dev });
    const dy = offs.reshape(1, 1, 1, this.nhoodSize, 1);
    const dx = offs.reshape(1, 1, 1, 1, this.nhoodSize);
    const idx = img.mul(c).add(chan).mul(h).add(py.add(dy)).mul(w).add(px.add(dx));
    return level.reshape(-1).indexSelect(0, idx.reshape(-1)).reshape(b * n, c, this.nhoodSize, this.nhoodSize);
  }

  /** Per-level descriptors [M, C·k²], normalised per channel over the whole set. Caller disposes. */
  finalize(): Tensor[] {
    if (this.#count === 0) throw new Error('SWD: no images were added');
    return this.#levels.map((parts) =>
      scope(() => {
        const d = parts.length === 1 ? parts[0]! : cat(parts, 0);
        const mean = d.mean([0, 2, 3], true);
        const std = d.std([0, 2, 3], false, true).clamp(1e-8);
        return d.sub(mean).div(std).reshape(d.shape[0]!, -1);
      }),
    );
  }

  dispose(): void {
    for (const parts of this.#levels) for (const t of parts) t.dispose();
    this.#levels = this.resolutions.map(() => []);
  }
}

/**
 * Sorts float32 values ascending in place (no NaNs): an LSD radix sort on the
 * order-preserving integer image of the IEEE bits, 3 passes of 11 bits. Several
 * times faster than libtorch's CPU sort, which also produces int64 indices we
 * do not need; SWD spends most of its time sorting projections.
 */
export function sortFloat32(values: Float32Array, scratch?: { keys: Uint32Array; tmp: Uint32Array }): Float32Array {
  const n = values.length;
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  const keys = scratch && scratch.keys.length >= n ? scratch.keys : new Uint32Array(n);
  const tmp = scratch && scratch.tmp.length >= n ? scratch.tmp : new Uint32Array(n);
  const counts = new Uint32Array(3 * 2048);
  for (let i = 0; i < n; i++) {
    const v = bits[i]!;
    // Negative floats: flip all bits; positive: flip the sign bit. Then unsigned order = float order.
    const k = v & 0x80000000 ? ~v >>> 0 : (v | 0x80000000) >>> 0;
    keys[i] = k;
    counts[k & 2047]!++;
    counts[2048 + ((k >>> 11) & 2047)]!++;
    counts[4096 + (k >>> 22)]!++;
  }
  for (let p = 0; p < 3; p++) {
    let sum = 0;
    for (let b = p * 2048; b < (p + 1) * 2048; b++) {
      const c = counts[b]!;
      counts[b] = sum;
      sum += c;
    }
  }
  let from = keys;
  let to = tmp;
  for (let p = 0; p < 3; p++) {
    const shift = 11 * p;
    const base = 2048 * p;
    for (let i = 0; i < n; i++) {
      const k = from[i]!;
      to[counts[base + ((k >>> shift) & 2047)]!++] = k;
    }
    [from, to] = [to, from];
  }
  for (let i = 0; i < n; i++) {
    const k = from[i]!;
    bits[i] = k & 0x80000000 ? (k & 0x7fffffff) >>> 0 : ~k >>> 0;
  }
  return values;
}

/**
 * Sliced Wasserstein distance between two equal-size descriptor sets [M, D]:
 * for each repeat, `dirsPerRepeat` random unit directions; project, sort each
 * projection, mean |sortedA − sortedB| over descriptors and directions; mean
 * over repeats. Not scaled.
 */
export function slicedWasserstein(a: Tensor, b: Tensor, generator: Generator, dirRepeats = 4, dirsPerRepeat = 128): number {
  if (a.ndim !== 2 || b.ndim !== 2 || a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1])
    throw new Error(`SWD: descriptor sets must have the same shape, got [${a.shape}] and [${b.shape}] (use the same number of images in both sets)`);
  const [m, dim] = a.shape as [number, number];
  // Project a few directions at a time so the [k, M] projections stay near 4 M floats.
  const chunk = Math.max(1, Math.min(dirsPerRepeat, Math.floor(2 ** 22 / m)));
  const scratch = { keys: new Uint32Array(m), tmp: new Uint32Array(m) };
  return scope(() => {
    const aT = a.transpose(0, 1);
    const bT = b.transpose(0, 1);
    let total = 0;
    for (let r = 0; r < dirRepeats; r++) {
      let sum = 0;
      scope(() => {
        const dirs = generator.randn([dim, dirsPerRepeat]);
        const unitT = dirs.div(dirs.square().sum(0, true).sqrt()).transpose(0, 1).contiguous().to({ device: a.device });
        for (let s = 0; s < dirsPerRepeat; s += chunk) {
          const k = Math.min(dirsPerRepeat, s + chunk) - s;
          const [pa, pb] = scope(() => {
            const d = unitT.slice(0, s, s + k);
            // [k, M] row-major: one projection per row.
            return [d.mm(aT).to('cpu').data() as Float32Array, d.mm(bT).to('cpu').data() as Float32Array];
          });
          for (let j = 0; j < k; j++) {
            const ra = sortFloat32(pa.subarray(j * m, (j + 1) * m), scratch);
            const rb = sortFloat32(pb.subarray(j * m, (j + 1) * m), scratch);
            let acc = 0;
            for (let i = 0; i < m; i++) acc += Math.abs(ra[i]! - rb[i]!);
            sum += acc;
          }
        }
      });
      total += sum / (m * dirsPerRepeat);
    }
    return total / dirRepeats;
  });
}

/** SWD ×10³ per level and their mean, from two finalized descriptor sets. */
export function swdFromDescriptors(a: SwdDescriptors, b: SwdDescriptors, options: Pick<SwdOptions, 'dirRepeats' | 'dirsPerRepeat'> = {}): SwdResult {
  if (a.count !== b.count) throw new Error(`SWD needs the same number of images in both sets, got ${a.count} and ${b.count}`);
  if (a.resolution !== b.resolution || a.channels !== b.channels)
    throw new Error(`SWD: image sets differ in geometry (${a.channels}×${a.resolution}² vs ${b.channels}×${b.resolution}²)`);
  if (a.seed !== b.seed) throw new Error(`SWD: both descriptor sets must use the same seed (${a.seed} vs ${b.seed})`);
  const da = a.finalize();
  const db = b.finalize();
  try {
    const levels = da.map((x, k) => 1e3 * slicedWasserstein(x, db[k]!, new Generator(deriveSeed(a.seed, 1000 + k)), options.dirRepeats ?? 4, options.dirsPerRepeat ?? 128));
    return { resolutions: [...a.resolutions], levels, mean: levels.reduce((s, v) => s + v, 0) / levels.length, count: a.count, seed: a.seed };
  } finally {
    for (const t of [...da, ...db]) t.dispose();
  }
}

/** SWD between two image sets of the same size and geometry (uint8 tensors [N,C,R,R] or byte arrays). */
export function slicedWassersteinDistance(x: Tensor | ImageArray, y: Tensor | ImageArray, options: SwdOptions = {}): SwdResult {
  const geometry = (v: Tensor | ImageArray) => (v instanceof Tensor ? v.shape.slice(1) : [v.channels, v.height, v.width]) as number[];
  const [c, h, w] = geometry(x) as [number, number, number];
  if (h !== w) throw new Error(`SWD: square images required, got ${h}×${w}`);
  const a = new SwdDescriptors(h, c, options);
  const b = new SwdDescriptors(h, c, options);
  try {
    for (const [set, v] of [[a, x], [b, y]] as const) {
      if (v instanceof Tensor) for (let s = 0; s < v.shape[0]!; s += 256) scope(() => set.add(v.slice(0, s, s + 256)));
      else set.addArray(v);
    }
    return swdFromDescriptors(a, b, options);
  } finally {
    a.dispose();
    b.dispose();
  }
}
