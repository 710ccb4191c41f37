// Fashion-MNIST (Zalando, 70,000 28×28 grey product photos, 10 classes) from
// Debian's `dataset-fashion-mnist` package: the project's built-in real-image
// set that needs no network beyond the distribution mirror.
//
// Files are the original gzipped IDX: a big-endian header (magic 2051 = uint8
// 3-D images, 2049 = uint8 1-D labels, then the dimensions) followed by raw
// bytes. We validate everything, since a truncated download must not turn into
// a silently shorter or shifted dataset.
import { existsSync, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { ArrayDataset, oneHot, subset, type ImageDataset } from './dataset.js';
import { DatasetError, describeError } from './errors.js';
import { padImages, resizeDataset } from './resize.js';
import type { ItemProgressOptions } from '../util/progress.js';

/** Where Debian's dataset-fashion-mnist package puts the IDX files (the default folder). */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** The Debian package that holds Fashion-MNIST. */
export const FASHION_MNIST_PACKAGE = 'dataset-fashion-mnist';

/** Class names in label order (0..9), from the Fashion-MNIST README. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Fashion-MNIST's licence and attribution, stored with any dataset made from it. */
export const FASHION_MNIST_NOTICE = [
  'Fashion-MNIST images and labels: Copyright (c) 2017 Zalando SE, https://github.com/zalandoresearch/fashion-mnist',
  'Licensed under the MIT (Expat) licence: the above copyright notice and this permission notice shall be',
  'included in all copies or substantial portions of the data. Obtained from the Debian package dataset-fashion-mnist.',
  'Images may have been padded (28->32 with black borders) or resized.',
].join('\n');

/** The magic number of an IDX image file (unsigned bytes, 3 dimensions). */
export const IDX_IMAGES_MAGIC = 2051;
/** The magic number of an IDX label file (unsigned bytes, 1 dimension). */
export const IDX_LABELS_MAGIC = 2049;

/** The images of an IDX file, as read. */
export interface IdxImages {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** count*rows*cols bytes, row-major. */
  readonly pixels: Uint8Array;
}

function header(buf: Uint8Array, where: string, magic: number, dims: number): number[] {
  const need = 4 + 4 * dims;
  const truncated = () => new DatasetError(`${where}: IDX file is truncated (${buf.length} bytes, the header alone needs ${need})`, { file: where });
  if (buf.length < 4) throw truncated();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // Magic first: a wrong file type is the more useful message than its length.
  const got = view.getUint32(0, false);
  if (got !== magic) {
    throw new DatasetError(`${where}: bad IDX magic number ${got}, expected ${magic} (${magic === IDX_IMAGES_MAGIC ? 'uint8 images' : 'uint8 labels'}); wrong file?`, { file: where });
  }
  if (buf.length < need) throw truncated();
  return Array.from({ length: dims }, (_, i) => view.getUint32(4 + 4 * i, false));
}

function checkLength(buf: Uint8Array, where: string, offset: number, expected: number): void {
  const have = buf.length - offset;
  if (have < expected) throw new DatasetError(`${where}: IDX file is truncated: header promises ${expected} data bytes, found ${have}`, { file: where });
  if (have > expected) throw new DatasetError(`${where}: IDX file has ${have - expected} unexpected trailing bytes after ${expected} data bytes`, { file: where });
}

/** Parse an (uncompressed) IDX3 uint8 image file. */
export function parseIdxImages(buf: Uint8Array, where = 'IDX images'): IdxImages {
  const [count, rows, cols] = header(buf, where, IDX_IMAGES_MAGIC, 3) as [number, number, number];
  if (rows === 0 || cols === 0) throw new DatasetError(`${where}: IDX images have size ${rows}×${cols}`, { file: where });
  checkLength(buf, where, 16, count * rows * cols);
  return { count, rows, cols, pixels: buf.subarray(16) };
}

/** Parse an (uncompressed) IDX1 uint8 label file. */
export function parseIdxLabels(buf: Uint8Array, where = 'IDX labels'): Uint8Array {
  const [count] = header(buf, where, IDX_LABELS_MAGIC, 1) as [number];
  checkLength(buf, where, 8, count);
  return buf.subarray(8);
}

const gunzip = promisify(zlib.gunzip);

/** Read a file, un-gzipping it when it starts with the gzip magic. */
export async function readMaybeGzip(file: string): Promise<Uint8Array> {
  let raw: Buffer;
  try {
    raw = await fsp.readFile(file);
  } catch (err) {
    throw new DatasetError(`cannot read ${file}: ${describeError(err)}`, { file, cause: err });
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return await gunzip(raw);
    } catch (err) {
      throw new DatasetError(`${file}: gzip data is truncated or corrupt (zlib: ${describeError(err)})`, { file, cause: err });
    }
  }
  return raw;
}

/** Which Fashion-MNIST images: 'train' (60,000), 'test' (10,000) or 'all' (train then test). */
export type FashionMnistSplit = 'train' | 'test' | 'all';

const FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/**
 * Make sure the IDX files are in `dir`. With `install` (what `patch-diffusion
 * setup --data fashion-mnist` asks; never the library's default), for the
 * default Debian location, when they are missing and we run as root on a
 * system with apt-get, install the package (retrying after `apt-get update`
 * when the first attempt fails). Otherwise throw with the command to run.
 */
export function ensureFashionMnist(dir: string = FASHION_MNIST_DIR, install = false): string {
  const needed = [...Object.values(FILES.train), ...Object.values(FILES.test)];
  const missing = () => needed.filter((f) => !existsSync(path.join(dir, f)));
  if (missing().length === 0) return dir;
  const howTo = `install it with: npx patch-diffusion setup --data fashion-mnist (or sudo apt-get install ${FASHION_MNIST_PACKAGE})`;
  if (path.resolve(dir) !== FASHION_MNIST_DIR) {
    throw new DatasetError(`Fashion-MNIST files missing in ${dir}: ${missing().join(', ')}`, { file: dir });
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (!install || !isRoot || !hasApt) {
    const why = !hasApt ? ' (this system has no apt-get: Debian/Ubuntu package)' : !isRoot && install ? ' (not running as root, so not installing it)' : '';
    throw new DatasetError(`Fashion-MNIST is not installed at ${dir}${why}; ${howTo}`, { file: dir });
  }
  // apt's own output goes to stderr so a CLI's stdout stays clean.
  const apt = (args: string[]) =>
    spawnSync('apt-get', args, { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  process.stderr.write(`Fashion-MNIST not found; installing Debian package ${FASHION_MNIST_PACKAGE}...\n`);
  const ok = apt(['install', '-y', FASHION_MNIST_PACKAGE]) || (apt(['update']) && apt(['install', '-y', FASHION_MNIST_PACKAGE]));
  if (!ok || missing().length > 0) throw new DatasetError(`installing ${FASHION_MNIST_PACKAGE} failed; ${howTo}`, { file: dir });
  return dir;
}

/** Images and class ids of one split, as stored (28×28, count*784 bytes). */
export async function readFashionMnistSplit(dir: string, split: 'train' | 'test'): Promise<{ images: IdxImages; labels: Uint8Array }> {
  const f = FILES[split];
  const imgPath = path.join(dir, f.images);
  const lblPath = path.join(dir, f.labels);
  const [imgBuf, lblBuf] = await Promise.all([readMaybeGzip(imgPath), readMaybeGzip(lblPath)]);
  const images = parseIdxImages(imgBuf, imgPath);
  const labels = parseIdxLabels(lblBuf, lblPath);
  if (images.count !== labels.length) {
    throw new DatasetError(`${split} split: ${images.count} images in ${imgPath} but ${labels.length} labels in ${lblPath}`, { file: lblPath });
  }
  const bad = labels.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new DatasetError(`${lblPath}: label ${labels[bad]} at index ${bad} is not a Fashion-MNIST class (0..9)`, { file: lblPath });
  return { images, labels };
}

/** How `loadFashionMnist` reads Fashion-MNIST: the split, the size, and where the files are. */
export interface FashionMnistOptions extends ItemProgressOptions {
  /** Default 'train' (60,000); 'test' is 10,000; 'all' is train then test. */
  split?: FashionMnistSplit | undefined;
  /**
   * 32 (default): pad 28→32 with 2 black pixels per side, the usual way to
   * fit a power-of-two UNet. 28: the raw images. Anything else: padded to 32,
   * then Lanczos-resized.
   */
  resolution?: number | undefined;
  /** One-hot class labels (default true). */
  labels?: boolean | undefined;
  /** Keep a fixed seeded subset of this many images (e.g. 5000). */
  limit?: number | undefined;
  /** Seed for `limit` (default 0). */
  seed?: number | undefined;
  /** Where the IDX files are (default the Debian location). */
  dir?: string | undefined;
  /** Install the Debian package when missing, as root (default false: the error says what to run). */
  install?: boolean | undefined;
  name?: string | undefined;
}

/** Fashion-MNIST as an ImageDataset (10 classes, grey), from the IDX files of the Debian package. */
export async function loadFashionMnist(options: FashionMnistOptions = {}): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test' && split !== 'all') throw new RangeError(`Fashion-MNIST split must be train, test or all, got ${String(split)}`);
  const resolution = options.resolution ?? 32;
  const dir = ensureFashionMnist(options.dir ?? FASHION_MNIST_DIR, options.install ?? false);
  const parts = split === 'all' ? [await readFashionMnistSplit(dir, 'train'), await readFashionMnistSplit(dir, 'test')] : [await readFashionMnistSplit(dir, split)];

  let count = 0;
  for (const p of parts) count += p.images.count;
  const raw = new Uint8Array(count * 28 * 28);
  const classes = new Uint8Array(count);
  let at = 0;
  for (const p of parts) {
    if (p.images.rows !== 28 || p.images.cols !== 28) throw new DatasetError(`Fashion-MNIST images are ${p.images.rows}×${p.images.cols}, expected 28×28`);
    raw.set(p.images.pixels, at * 784);
    classes.set(p.labels, at);
    at += p.images.count;
  }

  const pixels = resolution === 28 ? raw : padImages(raw, count, 1, 28, 32, 0);
  const useLabels = options.labels ?? true;
  let ds: ImageDataset = new ArrayDataset({
    name: options.name ?? (split === 'train' ? 'fashion-mnist' : `fashion-mnist-${split}`),
    resolution: resolution === 28 ? 28 : 32,
    channels: 1,
    pixels,
    labels: useLabels ? oneHot(classes, FASHION_MNIST_CLASSES.length) : null,
    labelDim: useLabels ? FASHION_MNIST_CLASSES.length : 0,
    ...(useLabels ? { classNames: FASHION_MNIST_CLASSES } : {}),
    notice: FASHION_MNIST_NOTICE,
  });
  if (options.limit !== undefined) ds = subset(ds, options.limit, options.seed ?? 0, options.name ?? `${ds.name}-${Math.min(options.limit, ds.length)}`);
  // Subset first: resampling 60,000 images to keep 5,000 would waste time.
  if (resolution !== 28 && resolution !== 32) ds = await resizeDataset(ds, resolution, options);
  return ds;
}
