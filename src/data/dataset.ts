// The in-memory dataset every source (image folder, zip, Fashion-MNIST, emoji)
// is turned into. Plain uint8 CHW pixels and float labels, no tensors: the
// training loop converts batches itself, so this layer stays testable without
// the native engine.
import { permutation } from './rng.js';

/** A dataset in memory: square uint8 images (CHW each) with optional labels, read image by image. */
export interface ImageDataset {
  readonly name: string;
  /** Number of images (before x-flip). */
  readonly length: number;
  /** Square side in pixels. */
  readonly resolution: number;
  readonly channels: 1 | 3;
  /** 0 when unlabelled; else the label vector width (one-hot: max label + 1). */
  readonly labelDim: number;
  /**
   * CHW uint8 pixels, length channels*resolution*resolution. Usually a view
   * into the dataset's storage (no copy): treat it as read-only.
   */
  image(index: number): Uint8Array;
  /** The label vector (one-hot or float), or null when labelDim is 0. Read-only view. */
  label(index: number): Float32Array | null;
  /** Names of the classes for one-hot labels, when known (Fashion-MNIST). */
  readonly classNames?: readonly string[];
  /** Licence/attribution text that must travel with anything made from this data. */
  readonly notice?: string;
}

/** What `ArrayDataset` is made from: the images back to back, and their labels. */
export interface ArrayDatasetInit {
  name: string;
  resolution: number;
  channels: 1 | 3;
  /** All images back to back, CHW each: length * channels * resolution^2 bytes. */
  pixels: Uint8Array;
  /** length * labelDim floats, or null. */
  labels?: Float32Array | null;
  labelDim?: number;
  classNames?: readonly string[];
  notice?: string;
}

/** Throws a RangeError (naming `what`) unless the resolution is an integer from 1 to 8192. */
export function checkResolution(resolution: number, what = 'resolution'): void {
  if (!Number.isInteger(resolution) || resolution < 1 || resolution > 8192) {
    throw new RangeError(`${what} must be an integer between 1 and 8192, got ${resolution}`);
  }
}

function checkIndex(index: number, length: number, name: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new RangeError(`${name}: index ${index} out of range [0, ${length})`);
  }
}

/** A dataset backed by one contiguous pixel buffer (and one label buffer). */
export class ArrayDataset implements ImageDataset {
  readonly name: string;
  readonly length: number;
  readonly resolution: number;
  readonly channels: 1 | 3;
  readonly labelDim: number;
  readonly classNames?: readonly string[];
  readonly notice?: string;
  private readonly pixels: Uint8Array;
  private readonly labels: Float32Array | null;
  private readonly imageSize: number;

  constructor(init: ArrayDatasetInit) {
    checkResolution(init.resolution);
    if (init.channels !== 1 && init.channels !== 3) throw new RangeError(`channels must be 1 or 3, got ${String(init.channels)}`);
    this.name = init.name;
    this.resolution = init.resolution;
    this.channels = init.channels;
    this.imageSize = init.channels * init.resolution * init.resolution;
    if (init.pixels.length % this.imageSize !== 0) {
      throw new RangeError(`${init.name}: pixel buffer of ${init.pixels.length} bytes is not a whole number of ${this.imageSize}-byte images`);
    }
    this.length = init.pixels.length / this.imageSize;
    this.pixels = init.pixels;
    const labels = init.labels ?? null;
    this.labelDim = labels ? (init.labelDim ?? 0) : 0;
    if (labels) {
      if (!Number.isInteger(this.labelDim) || this.labelDim < 1) throw new RangeError(`${init.name}: labels given but labelDim is ${String(init.labelDim)}`);
      if (labels.length !== this.length * this.labelDim) {
        throw new RangeError(`${init.name}: ${labels.length} label values for ${this.length} images of labelDim ${this.labelDim}`);
      }
    }
    this.labels = labels;
    if (init.classNames) this.classNames = init.classNames;
    if (init.notice !== undefined) this.notice = init.notice;
  }

  image(index: number): Uint8Array {
    checkIndex(index, this.length, this.name);
    return this.pixels.subarray(index * this.imageSize, (index + 1) * this.imageSize);
  }

  label(index: number): Float32Array | null {
    checkIndex(index, this.length, this.name);
    if (!this.labels) return null;
    return this.labels.subarray(index * this.labelDim, (index + 1) * this.labelDim);
  }
}

/** One-hot float32 labels, length * labelDim, for integer class ids. */
export function oneHot(classes: ArrayLike<number>, labelDim: number): Float32Array {
  const out = new Float32Array(classes.length * labelDim);
  for (let i = 0; i < classes.length; i++) {
    const c = classes[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= labelDim) throw new RangeError(`label ${c} at ${i} is outside [0, ${labelDim})`);
    out[i * labelDim + c] = 1;
  }
  return out;
}

/** The class id of a one-hot vector, or -1 when it is not exactly one-hot. */
export function oneHotClass(label: Float32Array): number {
  let cls = -1;
  for (let i = 0; i < label.length; i++) {
    const v = label[i]!;
    if (v === 1 && cls === -1) cls = i;
    else if (v !== 0) return -1;
  }
  return cls;
}

/** A dataset that shows chosen indices of another (no pixel copies). */
class IndexedDataset implements ImageDataset {
  readonly length: number;
  readonly resolution: number;
  readonly channels: 1 | 3;
  readonly labelDim: number;
  readonly classNames?: readonly string[];
  readonly notice?: string;

  constructor(
    readonly name: string,
    private readonly base: ImageDataset,
    private readonly indices: Uint32Array,
    private readonly keepLabels: boolean,
  ) {
    this.length = indices.length;
    this.resolution = base.resolution;
    this.channels = base.channels;
    this.labelDim = keepLabels ? base.labelDim : 0;
    if (base.classNames && keepLabels) this.classNames = base.classNames;
    if (base.notice !== undefined) this.notice = base.notice;
  }

  image(index: number): Uint8Array {
    checkIndex(index, this.length, this.name);
    return this.base.image(this.indices[index]!);
  }

  label(index: number): Float32Array | null {
    checkIndex(index, this.length, this.name);
    return this.keepLabels ? this.base.label(this.indices[index]!) : null;
  }
}

/** The indices a seeded subset of n out of length keeps (ascending). */
export function subsetIndices(length: number, n: number, seed: number): Uint32Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`subset size must be a positive integer, got ${n}`);
  if (n >= length) return Uint32Array.from({ length }, (_, i) => i);
  // As EDM's max_size: shuffle all indices with the seed, keep the first n,
  // then sort so the subset keeps the source order. Depends only on
  // (length, n, seed), so the "5,000-image regime" is the same set every run.
  return permutation(length, seed).subarray(0, n).sort();
}

/**
 * A fixed, seeded subset of n images (e.g. the paper's 5,000-image regime).
 * n >= length gives every image. labelDim is kept from the full dataset even if
 * the subset misses a class, so one-hot widths stay consistent.
 */
export function subset(ds: ImageDataset, n: number, seed: number = 0, name?: string): ImageDataset {
  const idx = subsetIndices(ds.length, n, seed);
  if (idx.length === ds.length) return ds;
  return new IndexedDataset(name ?? `${ds.name}-${idx.length}`, ds, idx, true);
}

/** The same images without labels (labelDim 0), for unconditional training. */
export function withoutLabels(ds: ImageDataset): ImageDataset {
  if (ds.labelDim === 0) return ds;
  return new IndexedDataset(ds.name, ds, Uint32Array.from({ length: ds.length }, (_, i) => i), false);
}

/** Mirror a CHW image left-right into `out` (EDM --xflip copies). */
export function flipX(src: Uint8Array, channels: number, resolution: number, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  const r = resolution;
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < r; y++) {
      const row = (c * r + y) * r;
      for (let x = 0; x < r; x++) out[row + x] = src[row + r - 1 - x]!;
    }
  }
  return out;
}

/** HWC (sharp's raw layout) to CHW. */
export function hwcToChw(src: Uint8Array, channels: number, width: number, height: number, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  if (channels === 1) {
    out.set(src.subarray(0, width * height));
    return out;
  }
  const plane = width * height;
  if (channels === 3) {
    // The common case, unrolled: this runs once per image on every dataset load.
    for (let p = 0, q = 0; p < plane; p++, q += 3) {
      out[p] = src[q]!;
      out[plane + p] = src[q + 1]!;
      out[2 * plane + p] = src[q + 2]!;
    }
    return out;
  }
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) out[c * plane + p] = src[p * channels + c]!;
  }
  return out;
}

/** CHW to HWC. */
export function chwToHwc(src: Uint8Array, channels: number, width: number, height: number, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  if (channels === 1) {
    out.set(src.subarray(0, width * height));
    return out;
  }
  const plane = width * height;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) out[p * channels + c] = src[c * plane + p]!;
  }
  return out;
}

/**
 * Grey from RGB with PIL's convert('L') integer formula (ITU-R 601-2 luma,
 * L = R*299/1000 + G*587/1000 + B*114/1000, rounded), so grey datasets match
 * what EDM's PIL-based tool would make from the same RGB pixels.
 */
export function rgbToGrey(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** Convert one CHW image between 1 and 3 channels (grey is repeated; RGB uses rgbToGrey). */
export function convertImageChannels(src: Uint8Array, from: 1 | 3, to: 1 | 3, pixels: number): Uint8Array {
  if (from === to) return src;
  if (from === 1) {
    const out = new Uint8Array(3 * pixels);
    out.set(src.subarray(0, pixels), 0);
    out.set(src.subarray(0, pixels), pixels);
    out.set(src.subarray(0, pixels), 2 * pixels);
    return out;
  }
  const out = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) out[p] = rgbToGrey(src[p]!, src[pixels + p]!, src[2 * pixels + p]!);
  return out;
}

/** The dataset with 1 or 3 channels (copies pixels when converting). */
export function withChannels(ds: ImageDataset, channels: 1 | 3): ImageDataset {
  if (ds.channels === channels) return ds;
  const px = ds.resolution * ds.resolution;
  const pixels = new Uint8Array(ds.length * channels * px);
  for (let i = 0; i < ds.length; i++) pixels.set(convertImageChannels(ds.image(i), ds.channels, channels, px), i * channels * px);
  return new ArrayDataset({ ...datasetMeta(ds), channels, pixels, labels: collectLabels(ds) });
}

/** All labels of a dataset as one buffer (null when unlabelled). */
export function collectLabels(ds: ImageDataset): Float32Array | null {
  if (ds.labelDim === 0) return null;
  const out = new Float32Array(ds.length * ds.labelDim);
  for (let i = 0; i < ds.length; i++) {
    const l = ds.label(i);
    if (l) out.set(l, i * ds.labelDim);
  }
  return out;
}

/** All pixels of a dataset as one buffer. */
export function collectPixels(ds: ImageDataset): Uint8Array {
  const size = ds.channels * ds.resolution * ds.resolution;
  const out = new Uint8Array(ds.length * size);
  for (let i = 0; i < ds.length; i++) out.set(ds.image(i), i * size);
  return out;
}

function datasetMeta(ds: ImageDataset): Omit<ArrayDatasetInit, 'pixels' | 'channels'> {
  const meta: Omit<ArrayDatasetInit, 'pixels' | 'channels'> = { name: ds.name, resolution: ds.resolution, labelDim: ds.labelDim };
  if (ds.classNames) meta.classNames = ds.classNames;
  if (ds.notice !== undefined) meta.notice = ds.notice;
  return meta;
}

/** A copy of the dataset under another name (metadata only; storage is shared when possible). */
export function renamed(ds: ImageDataset, name: string): ImageDataset {
  if (ds.name === name) return ds;
  return new IndexedDataset(name, ds, Uint32Array.from({ length: ds.length }, (_, i) => i), true);
}
