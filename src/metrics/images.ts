// Image batches as the metrics take them: uint8 NCHW bytes with their
// geometry (what the sampler writes and what datasets hold), plus helpers to
// turn them into tensors and to seed sub-streams reproducibly.
import type { ImageDataset } from '../data/dataset.js';
import { tensor, type Device, type Tensor } from '../tensor/index.js';

/** `count` images, uint8, NCHW (CHW per image, back to back). */
export interface ImageArray {
  data: Uint8Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

/**
 * Throws a RangeError (naming `what`) unless the dimensions are positive integers and the bytes are exactly
 * count×channels×height×width.
 */
export function checkImageArray(images: ImageArray, what = 'images'): void {
  const { data, count, channels, height, width } = images;
  for (const [k, v] of [['count', count], ['channels', channels], ['height', height], ['width', width]] as const)
    if (!Number.isInteger(v) || v < (k === 'count' ? 0 : 1)) throw new RangeError(`${what}: ${k} must be a positive integer, got ${v}`);
  if (data.length !== count * channels * height * width)
    throw new RangeError(`${what}: ${data.length} bytes is not ${count}×${channels}×${height}×${width}`);
}

/** A uint8 tensor [count, C, H, W] of the images (one copy). */
export function imageArrayToTensor(images: ImageArray, device: Device = 'cpu'): Tensor {
  checkImageArray(images);
  return tensor(images.data, [images.count, images.channels, images.height, images.width], { dtype: 'uint8', device });
}

/** Images start..end−1 of an array, without copying the bytes. */
export function sliceImages(images: ImageArray, start: number, end: number): ImageArray {
  const size = images.channels * images.height * images.width;
  const e = Math.min(end, images.count);
  return { ...images, data: images.data.subarray(start * size, e * size), count: Math.max(0, e - start) };
}

/** Images `indices` of a dataset, as one array (copied). */
export function datasetImages(ds: ImageDataset, indices: ArrayLike<number>): ImageArray {
  const size = ds.channels * ds.resolution * ds.resolution;
  const data = new Uint8Array(indices.length * size);
  for (let k = 0; k < indices.length; k++) data.set(ds.image(indices[k]!), k * size);
  return { data, count: indices.length, channels: ds.channels, height: ds.resolution, width: ds.resolution };
}

/** Batches of a dataset's images (in order, or the given indices). */
export function* datasetBatches(ds: ImageDataset, batchSize: number, indices?: ArrayLike<number>): Generator<ImageArray> {
  const n = indices ? indices.length : ds.length;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const idx = Array.from({ length: end - start }, (_, k) => (indices ? indices[start + k]! : start + k));
    yield datasetImages(ds, idx);
  }
}

/**
 * A seed for sub-stream `stream` of a user seed (a 32-bit mix), so that each
 * part of a metric (descriptor positions per level, directions, subsets)
 * draws from its own generator and does not depend on the order of the others.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed % 4294967296) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ Math.imul(stream + 0x9e3779b9, 0xc2b2ae35);
  h ^= h >>> 13;
  h = Math.imul(h, 0x27d4eb2f);
  h ^= h >>> 16;
  // Mix in the high part of seeds above 2^32 as well.
  h = (h ^ Math.floor(seed / 4294967296)) >>> 0;
  return h;
}
