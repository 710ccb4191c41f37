// Class shares of a set of Fashion-MNIST-like images by the shipped classifier's predictions, and the
// total-variation distance between two sets' shares. bench/class-balance.ts prints them for folders;
// bench/quality-study.ts records them for every point of the small-set study.
import type { ImageDataset } from '../src/data/dataset.js';
import type { LoadedClassifier } from '../src/metrics/classifier.js';
import { datasetImages, imageArrayToTensor, sliceImages, type ImageArray } from '../src/metrics/images.js';
import { scope } from '../src/tensor/index.js';

export const CLASSES = ['T-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'];

/** Shares of each predicted class (sums to 1). */
export function classShares(predictions: ArrayLike<number>, classes = CLASSES.length): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < predictions.length; i++) counts[predictions[i]!]!++;
  return counts.map((c) => c / Math.max(predictions.length, 1));
}

/** Total-variation distance between two distributions: half the sum of absolute differences (0 … 1). */
export function totalVariation(a: readonly number[], b: readonly number[]): number {
  return a.reduce((sum, v, k) => sum + Math.abs(v - b[k]!), 0) / 2;
}

/** The classifier's predicted class of each image (32×32 or 28×28 grey), in batches of 256 on the CPU. */
export function predictImages(images: ImageArray, classifier: Pick<LoadedClassifier, 'predict'>): Int32Array {
  const predictions = new Int32Array(images.count);
  for (let s = 0; s < images.count; s += 256) predictions.set(scope(() => classifier.predict(imageArrayToTensor(sliceImages(images, s, s + 256), 'cpu'))), s);
  return predictions;
}

/** The classifier's predicted class of each image of a data set. */
export function predictDataset(ds: ImageDataset, classifier: Pick<LoadedClassifier, 'predict'>): Int32Array {
  const predictions = new Int32Array(ds.length);
  for (let s = 0; s < ds.length; s += 256) {
    const idx = Array.from({ length: Math.min(256, ds.length - s) }, (_, i) => s + i);
    predictions.set(predictImages(datasetImages(ds, idx), classifier), s);
  }
  return predictions;
}
