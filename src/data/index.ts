// The dataset layer: sources (image folders/zips, Fashion-MNIST, emoji) →
// in-memory uint8 datasets → seeded, resumable batches; and EDM zip output.
export * from './dataset.js';
export * from './rng.js';
export * from './sampler.js';
export * from './errors.js';
export * from './images.js';
export * from './file-source.js';
export * from './edm-zip.js';
export * from './resize.js';
export * from './fashion-mnist.js';
export * from './emoji.js';
export * from './builtin.js';
export type { ProgressCallback, ItemProgressOptions as ProgressOptions } from '../util/progress.js';
export * from './png.js';
export * from './zip-writer.js';
export * from './zip-reader.js';
