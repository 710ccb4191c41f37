// What FD/KID need from a feature network, and the weights hash that
// identifies one (so cached reference statistics are tied to exact weights).
import { createHash } from 'node:crypto';
import { tensorBytes } from '../tensor/raw-bytes.js';
import type { Tensor } from '../tensor/index.js';

/**
 * A network that maps images to feature vectors for FD and KID (the Inception-v3 FID network, or the Fashion-MNIST
 * classifier's feature layer): computeMetrics compares the features' statistics between generated and reference
 * images, and ties cached reference statistics to its `name` and `sha256` (recording `preprocessing`). The network
 * owns its weights: dispose() frees them; the tensors features() returns are the caller's to free.
 */
export interface FeatureNetwork {
  /** Stable name, e.g. 'fashion-mnist-classifier' or 'inception-v3-fid'. */
  readonly name: string;
  /** sha256 (hex) of the weights, see weightsSha256. */
  readonly sha256: string;
  /** Feature width. */
  readonly dim: number;
  /** Identifier of the input preprocessing (recorded with statistics). */
  readonly preprocessing: string;
  /** Features [N, dim] float32 of uint8 images [N, C, H, W] (any size; preprocessing included). */
  features(images: Tensor): Tensor;
  /** Frees the network's weights. */
  dispose(): void;
}

/**
 * sha256 over the weights' content: for each tensor in name order, its name,
 * dtype, shape and raw little-endian bytes. Independent of file layout and
 * metadata, so the same weights always hash the same.
 */
export function weightsSha256(tensors: Map<string, Tensor>): string {
  const hash = createHash('sha256');
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    hash.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    hash.update(tensorBytes(t));
  }
  return hash.digest('hex');
}
