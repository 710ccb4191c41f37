// Read a folder or .zip of PNG/JPEG images into an ImageDataset.
//
// Geometry follows EDM's dataset_tool `--transform=center-crop`: take the
// centred square of side min(W, H) (offsets floor((W-s)/2), floor((H-s)/2)),
// then resize it to the target with Lanczos (sharp's lanczos3, the analogue of
// PIL's LANCZOS). When the square already has the target side no resampling
// happens at all, so PNG datasets written by edm-zip.ts read back bit-exact.
//
// Differences from EDM, on purpose:
// - alpha is composited on white (EDM rejects RGBA); emoji and icons are RGBA;
// - EXIF orientation is NOT applied, as PIL's Image.open does not either, so
//   pixels match EDM's for the same files;
// - colour and grey images may be mixed: by default the output has 3 channels
//   if any image is colour, else 1 (`channels` overrides). RGB→grey uses PIL's
//   convert('L') formula; grey→RGB repeats the plane;
// - bad files fail by default, naming the file; `skipBad: true` skips them
//   and lists them in the result (and calls onSkip) instead.
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { ArrayDataset, checkResolution, convertImageChannels, hwcToChw, type ImageDataset } from './dataset.js';
import { DatasetError, describeError } from './errors.js';
import { openFileSource, type FileSource } from './file-source.js';
import { decodeSimplePng } from './png.js';
import { startProgress, type ItemProgressOptions } from '../util/progress.js';
import * as path from 'node:path';

/** The file extensions read as images (PNG and JPEG), lower case. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg'];

function isPng(relPath: string): boolean {
  return relPath.toLowerCase().endsWith('.png');
}

/** Whether a path has an image extension (IMAGE_EXTENSIONS, any case). */
export function isImageFile(relPath: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.posix.extname(relPath).toLowerCase());
}

/** A file `readImages` left out, and why. */
export interface SkippedFile {
  /** Where the file is: a path, or zip:entry. */
  readonly file: string;
  readonly reason: string;
}

/** How `readImages` reads a folder or zip: the size and channels to make, labels, and limits. */
export interface ReadImagesOptions extends ItemProgressOptions {
  /**
   * Output side in pixels. Omitted: every image's centred square must already
   * have one common side, which becomes the resolution (no resizing).
   */
  resolution?: number | undefined;
  /** 1 (grey) or 3 (RGB). Default: 3 if any image is colour, else 1. */
  channels?: 1 | 3 | undefined;
  /** Read labels from dataset.json at the root (default true). */
  labels?: boolean | undefined;
  /**
   * Default false: the first unreadable image (corrupt, truncated, empty, not
   * an image) throws a DatasetError naming it. true: such files are skipped,
   * returned in `skipped` and passed to onSkip.
   */
  skipBad?: boolean | undefined;
  onSkip?: ((skipped: SkippedFile) => void) | undefined;
  /** Keep only image paths (relative, '/'-separated) for which this returns true. */
  filter?: ((relPath: string) => boolean) | undefined;
  /** Dataset name (default: the source's base name). */
  name?: string | undefined;
  notice?: string | undefined;
  /** Images decoded at once (default 8; sharp decodes on libuv's thread pool). */
  concurrency?: number | undefined;
}

/** `readImages`'s result: the dataset, the files it holds and the files left out. */
export interface ReadImagesResult {
  readonly dataset: ImageDataset;
  /** The relative paths of the images in the dataset, in dataset order. */
  readonly files: readonly string[];
  readonly skipped: readonly SkippedFile[];
}

interface Probe {
  width: number;
  height: number;
  colour: boolean;
  hasAlpha: boolean;
}

/** A decoded, cropped, resized image in its native channel count. */
export interface DecodedImage {
  /** CHW uint8. */
  readonly pixels: Uint8Array;
  readonly channels: 1 | 3;
  readonly resolution: number;
  /** Source size before cropping. */
  readonly width: number;
  readonly height: number;
}

/** An error about one file, which skipBad may skip (as opposed to dataset-level errors). */
class BadFileError extends DatasetError {}

// 'error' rejects truncated and corrupt data but tolerates libpng/libjpeg
// warnings (e.g. a known-incorrect sRGB profile) that PIL also accepts.
const SHARP_INPUT = { failOn: 'error' } as const;

async function probe(buf: Buffer, where: string): Promise<Probe> {
  if (buf.length === 0) throw new BadFileError(`${where}: file is empty (0 bytes)`, { file: where });
  let meta: Metadata;
  try {
    meta = await sharp(buf, SHARP_INPUT).metadata();
  } catch (err) {
    throw new BadFileError(`${where}: not a readable image (sharp: ${describeError(err)})`, { file: where, cause: err });
  }
  const { width, height } = meta;
  if (!width || !height) throw new BadFileError(`${where}: image has no size (sharp reported ${width}×${height})`, { file: where });
  const alpha = meta.hasAlpha ? 1 : 0;
  const bands = (meta.channels ?? 3) - alpha;
  const colour = !(meta.space === 'b-w' || meta.space === 'grey16' || bands === 1);
  return { width, height, colour, hasAlpha: meta.hasAlpha === true };
}

/** The centred square of a W×H image, as EDM's center-crop computes it. */
export function centerCropBox(width: number, height: number): { left: number; top: number; size: number } {
  const size = Math.min(width, height);
  return { left: Math.floor((width - size) / 2), top: Math.floor((height - size) / 2), size };
}

async function decodeProbed(buf: Buffer, where: string, p: Probe, resolution: number): Promise<DecodedImage> {
  const box = centerCropBox(p.width, p.height);
  let img = sharp(buf, SHARP_INPUT);
  if (p.width !== p.height) img = img.extract({ left: box.left, top: box.top, width: box.size, height: box.size });
  if (p.hasAlpha) img = img.flatten({ background: { r: 255, g: 255, b: 255 } });
  // Skip resampling when the square is already the target: keeps stored PNG
  // datasets bit-exact (even an identity Lanczos pass is not guaranteed exact).
  if (box.size !== resolution) img = img.resize(resolution, resolution, { kernel: 'lanczos3', fit: 'fill', fastShrinkOnLoad: false });
  // Also converts 16-bit, palette and CMYK input to 8-bit grey or sRGB.
  img = img.toColourspace(p.colour ? 'srgb' : 'b-w').removeAlpha();
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new BadFileError(`${where}: cannot decode image, it may be truncated or corrupt (sharp: ${describeError(err)})`, { file: where, cause: err });
  }
  const { info } = out;
  if (info.width !== resolution || info.height !== resolution || (info.channels !== 1 && info.channels !== 3)) {
    throw new BadFileError(`${where}: decoded to ${info.width}×${info.height}×${info.channels}, expected ${resolution}×${resolution}×1 or ×3`, { file: where });
  }
  const channels = info.channels as 1 | 3;
  const pixels = hwcToChw(new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length), channels, resolution, resolution);
  return { pixels, channels, resolution, width: p.width, height: p.height };
}

/** Decode one encoded image: centre-crop, composite alpha on white, resize to `resolution` (default: the square's side). */
export async function decodeImage(buf: Buffer, where: string, resolution?: number): Promise<DecodedImage> {
  const p = await probe(buf, where);
  const res = resolution ?? Math.min(p.width, p.height);
  checkResolution(res);
  return decodeProbed(buf, where, p, res);
}

type LabelValue = number | readonly number[];

/** Labels from an EDM dataset.json: a map from relative path to int or float vector, or null. */
export function parseDatasetJson(text: string, where: string): Map<string, LabelValue> | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DatasetError(`${where} is not valid JSON: ${describeError(err)}`, { file: where, cause: err });
  }
  if (typeof json !== 'object' || json === null || !('labels' in json)) {
    throw new DatasetError(`${where}: expected {"labels": [[relative_path, label], ...]} or {"labels": null}`, { file: where });
  }
  const labels = (json as { labels: unknown }).labels;
  if (labels === null) return null;
  if (!Array.isArray(labels)) throw new DatasetError(`${where}: "labels" must be a list of [relative_path, label] pairs or null`, { file: where });
  const map = new Map<string, LabelValue>();
  let kind: 'int' | 'vector' | undefined;
  let width = -1;
  labels.forEach((entry: unknown, i: number) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') {
      throw new DatasetError(`${where}: labels[${i}] must be [relative_path, label], got ${JSON.stringify(entry)}`, { file: where });
    }
    const name = entry[0].replace(/\\/g, '/').replace(/^\.\//, '');
    const value: unknown = entry[1];
    if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < 0) {
        throw new DatasetError(`${where}: label for '${name}' must be a non-negative integer class (or a list of numbers), got ${JSON.stringify(value)}`, { file: where });
      }
      if (kind === 'vector') throw new DatasetError(`${where}: labels mix integers and vectors (at '${name}')`, { file: where });
      kind = 'int';
      map.set(name, value);
    } else if (Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      if (kind === 'int') throw new DatasetError(`${where}: labels mix integers and vectors (at '${name}')`, { file: where });
      if (width !== -1 && value.length !== width) throw new DatasetError(`${where}: label vector for '${name}' has ${value.length} values, others have ${width}`, { file: where });
      kind = 'vector';
      width = value.length;
      map.set(name, value as number[]);
    } else {
      throw new DatasetError(`${where}: label for '${name}' must be a non-negative integer class (or a list of numbers), got ${JSON.stringify(value)}`, { file: where });
    }
  });
  return map;
}

/** One-hot widths above this are a mistake (a label like 1e9), not a class count. */
const MAX_LABEL_DIM = 100_000;

/** Run `fn` over items with at most `limit` in flight; results keep item order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  async function worker(): Promise<void> {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  }
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, () => worker());
  // allSettled first so no worker is left running after we throw.
  const settled = await Promise.allSettled(workers);
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}

function describeSource(src: FileSource): string {
  return src.kind === 'zip' ? `zip ${src.root}` : `folder ${src.root}`;
}

/** Read every PNG/JPEG under a folder (recursively) or in a .zip. */
export async function readImages(source: string, options: ReadImagesOptions = {}): Promise<ReadImagesResult> {
  if (options.resolution !== undefined) checkResolution(options.resolution);
  if (options.channels !== undefined && options.channels !== 1 && options.channels !== 3) {
    throw new RangeError(`channels must be 1 or 3, got ${String(options.channels)}`);
  }
  const src = await openFileSource(source);
  try {
    return await readFromSource(src, options);
  } finally {
    await src.close();
  }
}

async function readFromSource(src: FileSource, options: ReadImagesOptions): Promise<ReadImagesResult> {
  const whereOf = (rel: string) => (src.kind === 'zip' ? `${src.root}:${rel}` : path.join(src.root, ...rel.split('/')));
  const allImages = src.files.filter(isImageFile);
  if (allImages.length === 0) {
    throw new DatasetError(`no images found in ${describeSource(src)}, expected .png/.jpg/.jpeg files`, { file: src.root });
  }
  const candidates = options.filter ? allImages.filter(options.filter) : allImages;
  if (candidates.length === 0) throw new DatasetError(`no images in ${describeSource(src)} passed the filter (${allImages.length} found)`, { file: src.root });

  // Labels: checked before any decoding, so a bad dataset.json fails fast.
  let labelMap: Map<string, LabelValue> | null = null;
  if ((options.labels ?? true) && src.files.includes('dataset.json')) {
    const where = whereOf('dataset.json');
    labelMap = parseDatasetJson((await src.read('dataset.json')).toString('utf8'), where);
    if (labelMap) {
      const present = new Set(allImages);
      for (const name of labelMap.keys()) {
        if (!present.has(name)) throw new DatasetError(`${where} names '${name}', which is not an image in ${describeSource(src)}`, { file: where });
      }
      for (const name of candidates) {
        if (!labelMap.has(name)) throw new DatasetError(`${where} has no label for image '${name}'`, { file: where });
      }
    }
  }

  const skipped: SkippedFile[] = [];
  const progress = startProgress('reading images', candidates.length, options);
  let resolution = options.resolution;
  const fixedSize = resolution === undefined;
  let sizeSource = '';

  const load = async (rel: string): Promise<DecodedImage | null> => {
    const where = whereOf(rel);
    try {
      const buf = await src.read(rel);
      // Fast path for plain 8-bit grey/RGB PNGs (what EDM zips hold); anything
      // else, or any damage, goes through sharp.
      const simple = isPng(rel) ? decodeSimplePng(buf) : null;
      const p = simple ? { width: simple.width, height: simple.height, colour: simple.channels === 3, hasAlpha: false } : await probe(buf, where);
      const side = Math.min(p.width, p.height);
      if (fixedSize && resolution !== undefined && side !== resolution) {
        // Not a bad file, a dataset-level choice: never skipped.
        throw new DatasetError(
          `images differ in size: ${where} is ${p.width}×${p.height} (square ${side}) but ${sizeSource} sets ${resolution}; pass a resolution to resize them all`,
          { file: where },
        );
      }
      const target = resolution ?? side;
      const img =
        simple && simple.width === simple.height && simple.width === target
          ? { pixels: hwcToChw(simple.data, simple.channels, target, target), channels: simple.channels, resolution: target, width: p.width, height: p.height }
          : await decodeProbed(buf, where, p, target);
      // Only a successfully decoded image may fix the common size.
      if (resolution === undefined) {
        resolution = target;
        sizeSource = `${where} (${p.width}×${p.height})`;
      }
      return img;
    } catch (err) {
      if (err instanceof BadFileError && options.skipBad) {
        const s = { file: where, reason: err.message };
        skipped.push(s);
        options.onSkip?.(s);
        return null;
      }
      throw err;
    } finally {
      progress.tick();
    }
  };

  let decoded: (DecodedImage | null)[];
  try {
    // Without a resolution, the first readable image fixes it: decode in order
    // until one succeeds, then the rest in parallel.
    let start = 0;
    const head: (DecodedImage | null)[] = [];
    while (resolution === undefined && start < candidates.length) head.push(await load(candidates[start++]!));
    const rest = await mapLimit(candidates.slice(start), options.concurrency ?? 8, (rel) => load(rel));
    decoded = [...head, ...rest];
  } finally {
    progress.stop();
  }

  const files: string[] = [];
  const images: DecodedImage[] = [];
  decoded.forEach((img, i) => {
    if (img) {
      files.push(candidates[i]!);
      images.push(img);
    }
  });
  if (images.length === 0) {
    throw new DatasetError(`no readable images in ${describeSource(src)}: all ${candidates.length} were skipped as bad (first: ${skipped[0]?.reason ?? '?'})`, { file: src.root });
  }

  const res = images[0]!.resolution;
  const channels: 1 | 3 = options.channels ?? (images.some((im) => im.channels === 3) ? 3 : 1);
  const px = res * res;
  const pixels = new Uint8Array(images.length * channels * px);
  images.forEach((im, i) => pixels.set(convertImageChannels(im.pixels, im.channels, channels, px), i * channels * px));

  let labels: Float32Array | null = null;
  let labelDim = 0;
  const map = labelMap;
  if (map) {
    const values = files.map((f) => map.get(f)!);
    if (typeof values[0] === 'number') {
      // EDM: integer labels become one-hot of width max+1, the max taken over
      // all listed images so a skipped or filtered file does not shrink it.
      let max = 0;
      for (const name of allImages) {
        const v = map.get(name);
        if (typeof v === 'number' && v > max) max = v;
      }
      labelDim = max + 1;
      if (labelDim > MAX_LABEL_DIM) throw new DatasetError(`${whereOf('dataset.json')}: largest class label ${max} would make a ${labelDim}-wide one-hot; class labels must be 0..N-1`);
      labels = new Float32Array(files.length * labelDim);
      values.forEach((v, i) => {
        labels![i * labelDim + (v as number)] = 1;
      });
    } else {
      labelDim = (values[0] as readonly number[]).length;
      if (labelDim > 0) {
        labels = new Float32Array(files.length * labelDim);
        values.forEach((v, i) => labels!.set(v as readonly number[], i * labelDim));
      }
    }
  }

  const name = options.name ?? path.basename(src.root).replace(/\.zip$/i, '');
  const dataset = new ArrayDataset({
    name,
    resolution: res,
    channels,
    pixels,
    labels,
    labelDim,
    ...(options.notice !== undefined ? { notice: options.notice } : {}),
  });
  return { dataset, files, skipped };
}
