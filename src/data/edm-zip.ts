// Write a dataset as an EDM-style zip, the format EDM/Patch Diffusion training
// and fid.py read: uncompressed (stored) zip of uncompressed PNGs named
// NNNNN/imgNNNNNNNN.png (first 5 of 8 digits = folder) plus dataset.json.
// PNG is lossless, so reading the zip back (images.ts, no resize at the stored
// size) gives the same pixels.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { chwToHwc, oneHotClass, type ImageDataset } from './dataset.js';
import { DatasetError, describeError } from './errors.js';
import { encodePngRaw } from './png.js';
import { startProgress, type ItemProgressOptions } from '../util/progress.js';
import { StoredZipWriter } from './zip-writer.js';

/** EDM's file name for image `index`: "00012/img00012345.png". */
export function edmImageName(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0 || index > 99_999_999) throw new RangeError(`EDM image index must be in [0, 99999999], got ${index}`);
  const digits = String(index).padStart(8, '0');
  return `${digits.slice(0, 5)}/img${digits}.png`;
}

/**
 * One CHW uint8 image as an uncompressed 8-bit grey or RGB PNG. Level 0 as
 * EDM's PIL save(compress_level=0): the zip is stored too, so reading an
 * image back is little more than a copy, and the bytes are deterministic.
 */
export function encodePngSync(chw: Uint8Array, channels: 1 | 3, resolution: number): Buffer {
  return encodePngRaw(chwToHwc(chw, channels, resolution, resolution), resolution, resolution, channels);
}

/** EDM's dataset.json content: integer classes for one-hot labels, vectors otherwise, or null. */
export function datasetJson(ds: ImageDataset): string {
  if (ds.labelDim === 0) return JSON.stringify({ labels: null });
  const rows: [string, number | number[]][] = [];
  const labels: (number | number[])[] = [];
  let allOneHot = true;
  for (let i = 0; i < ds.length; i++) {
    const l = ds.label(i)!;
    const cls = oneHotClass(l);
    if (cls < 0) allOneHot = false;
    labels.push(cls);
  }
  for (let i = 0; i < ds.length; i++) {
    rows.push([edmImageName(i), allOneHot ? (labels[i] as number) : Array.from(ds.label(i)!)]);
  }
  return JSON.stringify({ labels: rows });
}

/** How `writeEdmZip` writes: the notice to store with the data, and progress. */
export interface WriteEdmZipOptions extends ItemProgressOptions {
  /**
   * Licence/attribution text; defaults to the dataset's own `notice`. When
   * present it is stored as NOTICE inside the zip and written beside it as
   * `<dest>.NOTICE`, so the attribution travels with the data.
   */
  notice?: string | undefined;
}

/** What `writeEdmZip` wrote. */
export interface WriteEdmZipResult {
  readonly path: string;
  readonly count: number;
  /** Size of the zip in bytes. */
  readonly bytes: number;
  readonly noticePath?: string;
}

/**
 * Write `ds` to `dest` as an EDM dataset zip. Atomic: written to a temporary
 * file in the same folder and renamed over `dest` only when complete, so an
 * interrupted run never leaves a half zip that looks valid.
 */
export async function writeEdmZip(dest: string, ds: ImageDataset, options: WriteEdmZipOptions = {}): Promise<WriteEdmZipResult> {
  if (ds.length === 0) throw new DatasetError(`refusing to write an empty dataset to ${dest}`);
  if (ds.length > 100_000_000) throw new DatasetError(`${ds.length} images exceed EDM's 8-digit naming`);
  const dir = path.dirname(path.resolve(dest));
  const st = await fsp.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new DatasetError(`cannot write ${dest}: folder ${dir} does not exist`, { file: dest });
  const tmp = path.join(dir, `.${path.basename(dest)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const notice = options.notice ?? ds.notice;

  const zip = await StoredZipWriter.create(tmp);
  const progress = startProgress('writing zip', ds.length, options);
  try {
    for (let i = 0; i < ds.length; i++) {
      await zip.add(edmImageName(i), encodePngSync(ds.image(i), ds.channels, ds.resolution));
      progress.tick();
    }
    await zip.add('dataset.json', Buffer.from(datasetJson(ds), 'utf8'));
    if (notice !== undefined) await zip.add('NOTICE', Buffer.from(notice, 'utf8'));
    await zip.finish();
    await fsp.rename(tmp, dest);
  } catch (err) {
    await zip.abort();
    await fsp.rm(tmp, { force: true });
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(`failed to write ${dest}: ${describeError(err)}`, { file: dest, cause: err });
  } finally {
    progress.stop();
  }
  let noticePath: string | undefined;
  if (notice !== undefined) {
    noticePath = `${dest}.NOTICE`;
    await fsp.writeFile(noticePath, notice.endsWith('\n') ? notice : `${notice}\n`);
  } else {
    // A NOTICE left from an earlier dataset at this path would misattribute this one.
    await fsp.rm(`${dest}.NOTICE`, { force: true });
  }
  const bytes = (await fsp.stat(dest)).size;
  return { path: dest, count: ds.length, bytes, ...(noticePath ? { noticePath } : {}) };
}
