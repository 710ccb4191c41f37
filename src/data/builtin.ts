// One entry point for "give me a dataset": a folder, a .zip (EDM-style or any
// zip of images), or a built-in name. Training and the `dataset` command both
// go through here, so they accept the same sources with the same options.
// X-flip is not a dataset option: the sampler doubles the index space.
import { subset, withChannels, withoutLabels, type ImageDataset } from './dataset.js';
import { loadEmoji } from './emoji.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { readImages, type SkippedFile } from './images.js';
import type { ItemProgressOptions } from '../util/progress.js';
import { resizeDataset } from './resize.js';

/** The built-in data sets by name, each with a line saying what it is. */
export const BUILTIN_DATASETS = {
  'fashion-mnist': 'Fashion-MNIST train split: 60,000 grey 28×28 images padded to 32×32, 10 classes (Debian package dataset-fashion-mnist)',
  'fashion-mnist-5k': 'a fixed seeded 5,000-image subset of the Fashion-MNIST train split (the small-data regime), 32×32, 10 classes',
  'fashion-mnist-2k':
    'the first 2,000 of fashion-mnist-5k\'s seeded permutation (inside fashion-mnist-5k), 32×32, 10 classes; held out: the Fashion-MNIST test split (10,000 images never trained on)',
  'fashion-mnist-500':
    'the first 500 of fashion-mnist-5k\'s seeded permutation (inside fashion-mnist-2k), 32×32, 10 classes; held out: the Fashion-MNIST test split (10,000 images never trained on)',
  emoji: 'Google Noto emoji, 64×64 RGB on white, unlabelled (npm emoji-datasource-google, Apache-2.0 images)',
} as const;

/** A built-in data set name (fashion-mnist, its subsets, emoji). */
export type BuiltinName = keyof typeof BUILTIN_DATASETS;

/** Seed of the fixed fashion-mnist-5k subset. Never change it: results compare across runs by it. */
export const FASHION_MNIST_5K_SEED = 0;

/** The built-in seeded subsets of the Fashion-MNIST train split and their sizes (all on FASHION_MNIST_5K_SEED, so nested). */
export const FASHION_MNIST_SUBSETS = { 'fashion-mnist-5k': 5000, 'fashion-mnist-2k': 2000, 'fashion-mnist-500': 500 } as const;

/** Whether `spec` names a built-in data set rather than a path. */
export function isBuiltinName(spec: string): spec is BuiltinName {
  return Object.hasOwn(BUILTIN_DATASETS, spec);
}

/** How `loadDataset` reads a built-in set, a folder or a zip. */
export interface LoadDatasetOptions extends ItemProgressOptions {
  /** Output side. Default: the source's own (fashion-mnist 32, emoji 64, files: their common size). */
  resolution?: number | undefined;
  /** 1 or 3. Default: the source's own (files: 3 if any image is colour). */
  channels?: 1 | 3 | undefined;
  /** Use labels when the source has them (default true); false gives labelDim 0. */
  labels?: boolean | undefined;
  /** Keep a fixed seeded subset of at most this many images. */
  maxImages?: number | undefined;
  /** Seed for maxImages (default 0). */
  seed?: number | undefined;
  /** Skip unreadable image files instead of failing (files and emoji). Default false. */
  skipBad?: boolean | undefined;
  /** Called for each skipped file; default: a warning line on stderr. */
  onSkip?: ((skipped: SkippedFile) => void) | undefined;
  /** Fetch a missing built-in (apt for Fashion-MNIST as root, npm for emoji). Default false: the error says what to run. */
  install?: boolean | undefined;
  /** Folders and zips: read only the images whose path (relative to the folder or zip) passes. */
  filter?: ((relPath: string) => boolean) | undefined;
  /** Emoji: include skin-tone variants (default true). */
  skinTones?: boolean | undefined;
  /** Emoji: npm install prefix (default ~/.cache/patch-diffusion/emoji). */
  cacheDir?: string | undefined;
}

/**
 * Load `spec`: a built-in name (fashion-mnist, fashion-mnist-5k/-2k/-500, emoji) or a
 * path to a folder or .zip of PNG/JPEG images. A bare built-in name wins over
 * a same-named folder in the working directory; write "./emoji" for the folder.
 */
export async function loadDataset(spec: string, options: LoadDatasetOptions = {}): Promise<ImageDataset> {
  if (options.maxImages !== undefined && (!Number.isSafeInteger(options.maxImages) || options.maxImages < 1)) {
    throw new RangeError(`maxImages must be a positive integer, got ${options.maxImages}`);
  }
  const useLabels = options.labels ?? true;
  const onSkip = options.onSkip ?? ((s: SkippedFile) => process.stderr.write(`warning: skipped ${s.reason}\n`));
  const progress = { onProgress: options.onProgress, progressBar: options.progressBar };
  let ds: ImageDataset;
  if (spec === 'fashion-mnist' || Object.hasOwn(FASHION_MNIST_SUBSETS, spec)) {
    ds = await loadFashionMnist({
      split: 'train',
      // Native 28/32 are handled there; other sizes are resized after subsetting below.
      resolution: options.resolution === 28 ? 28 : 32,
      labels: useLabels,
      install: options.install,
      ...progress,
    });
    // One seeded permutation, its first n kept: fashion-mnist-500 ⊂ fashion-mnist-2k ⊂ fashion-mnist-5k.
    const n = FASHION_MNIST_SUBSETS[spec as keyof typeof FASHION_MNIST_SUBSETS];
    if (n !== undefined) ds = subset(ds, n, FASHION_MNIST_5K_SEED, spec);
  } else if (spec === 'emoji') {
    ds = await loadEmoji({
      resolution: options.resolution ?? 64,
      skinTones: options.skinTones,
      cacheDir: options.cacheDir,
      install: options.install,
      skipBad: options.skipBad,
      onSkip,
      ...progress,
    });
  } else {
    ({ dataset: ds } = await readImages(spec, {
      resolution: options.resolution,
      channels: options.channels,
      labels: useLabels,
      skipBad: options.skipBad,
      onSkip,
      ...(options.filter ? { filter: options.filter } : {}),
      ...progress,
    }));
  }
  if (!useLabels) ds = withoutLabels(ds);
  if (options.maxImages !== undefined && options.maxImages < ds.length) {
    ds = subset(ds, options.maxImages, options.seed ?? 0, `${ds.name}-${options.maxImages}`);
  }
  if (options.resolution !== undefined && options.resolution !== ds.resolution) ds = await resizeDataset(ds, options.resolution, progress);
  if (options.channels !== undefined) ds = withChannels(ds, options.channels);
  return ds;
}
