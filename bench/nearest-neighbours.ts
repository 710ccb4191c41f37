// Memorisation check: how close each generated image is to its nearest
// training image, in pixels (RMS difference of [0, 1] values) and in the
// shipped Fashion-MNIST classifier's features (Euclidean), next to the same
// distances for held-out real images. Samples much closer to the training
// set than held-out real images are copies; a better FD built on copies is
// not better generation.
import type { ImageDataset } from '../src/data/dataset.js';
import type { FeatureNetwork } from '../src/metrics/feature-network.js';
import { datasetBatches, imageArrayToTensor, sliceImages, type ImageArray } from '../src/metrics/images.js';
import { cat, noGrad, scope, type Device, type Tensor } from '../src/tensor/index.js';

export interface NearestSummary {
  /** Median over the query images of the distance to the nearest training image. */
  median: number;
  /** 5th percentile (the closest samples). */
  p05: number;
  /** Share of queries closer than the held-out real images' 5th percentile (set by the caller; NaN for the real rows). */
  closeShare: number;
}

type Embed = (images: ImageArray) => Tensor;

/** Rows [N, D] float32 for a set of images, in batches. */
function embedAll(images: Iterable<ImageArray>, embed: Embed): Tensor {
  const parts: Tensor[] = [];
  try {
    for (const b of images) parts.push(embed(b));
    return cat(parts, 0);
  } finally {
    for (const p of parts) p.dispose();
  }
}

/** Distance of each query row to its nearest reference row. */
function nearest(queries: Tensor, reference: Tensor): Float32Array {
  return scope(() => {
    const q2 = queries.square().sum(1, true);
    const r2 = reference.square().sum(1, true).transpose(0, 1);
    const d2 = q2.add(r2).sub(queries.matmul(reference.transpose(0, 1)).mul(2)).clamp(0, Infinity);
    return d2.amin(1).sqrt().to('cpu').data() as Float32Array;
  });
}

function quantile(values: Float32Array, q: number): number {
  const s = Float32Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))]!;
}

/** Pixel rows [N, C·H·W] in [0, 1]. */
const pixelRows = (b: ImageArray, device: Device): Tensor => scope(() => imageArrayToTensor(b, device).to('float32').div(255).flatten(1));

/** Each query image's nearest training image in pixels: its index in `training` and the RMS distance (for the sample-beside-training grids). */
export function nearestTraining(queries: ImageArray, training: ImageDataset, o: { device: Device; batch?: number }): { index: Int32Array; distance: Float32Array } {
  const batch = o.batch ?? 256;
  return noGrad(() => {
    const ref = embedAll(datasetBatches(training, batch), (b) => pixelRows(b, o.device));
    const q = pixelRows(queries, o.device);
    try {
      return scope(() => {
        const d2 = q.square().sum(1, true).add(ref.square().sum(1, true).transpose(0, 1)).sub(q.matmul(ref.transpose(0, 1)).mul(2)).clamp(0, Infinity);
        const values = queries.channels * queries.height * queries.width;
        const distance = d2.amin(1).div(values).sqrt().to('cpu').data() as Float32Array;
        const index = Int32Array.from(d2.neg().argmax(1).to('cpu').toArray()); // argmin: the nearest
        return { index, distance };
      });
    } finally {
      q.dispose();
      ref.dispose();
    }
  });
}

export interface MemorisationReport {
  pixels: { samples: NearestSummary; heldOut: NearestSummary };
  features: { samples: NearestSummary; heldOut: NearestSummary } | null;
}

/** Nearest-training-image distances of `samples` and of `heldOut` real images, in pixels and (given a network) features. */
export function memorisation(samples: ImageArray, heldOut: ImageArray, training: ImageDataset, o: { device: Device; features?: FeatureNetwork | null; batch?: number }): MemorisationReport {
  const batch = o.batch ?? 256;
  const split = function* (a: ImageArray) {
    for (let s = 0; s < a.count; s += batch) yield sliceImages(a, s, Math.min(a.count, s + batch));
  };
  const pixelEmbed: Embed = (b) => pixelRows(b, o.device);
  const summarise = (embed: Embed, scale: number) =>
    noGrad(() => {
      const ref = embedAll(datasetBatches(training, batch), embed);
      try {
        const dq = (a: ImageArray) => {
          const q = embedAll(split(a), embed);
          try {
            return nearest(q, ref).map((v) => v * scale);
          } finally {
            q.dispose();
          }
        };
        const ds = dq(samples), dh = dq(heldOut);
        const threshold = quantile(dh, 0.05);
        const sum = (d: Float32Array, close: boolean): NearestSummary => ({
          median: quantile(d, 0.5),
          p05: quantile(d, 0.05),
          closeShare: close ? d.filter((v) => v < threshold).length / d.length : NaN,
        });
        return { samples: sum(ds, true), heldOut: sum(dh, false) };
      } finally {
        ref.dispose();
      }
    });
  // Pixel distances as RMS per value: the Euclidean distance / √(values per image).
  const values = samples.channels * samples.height * samples.width;
  const net = o.features ?? null;
  return {
    pixels: summarise(pixelEmbed, 1 / Math.sqrt(values)),
    features: net ? summarise((b) => scope(() => net.features(imageArrayToTensor(b, o.device))), 1) : null,
  };
}
