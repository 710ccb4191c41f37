// Writing images people look at: single PNGs and sample grids.
import sharp from 'sharp';
import { writeFileAtomic } from './atomic.js';

/** Images as uint8 NHWC bytes with their geometry. */
export interface ImageBatch {
  data: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
}

export async function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  return sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } })
    .png()
    .toBuffer();
}

/** Image k of a batch as its own NHWC slice. */
export function imageAt(batch: ImageBatch, k: number): Uint8Array {
  const size = batch.height * batch.width * batch.channels;
  return batch.data.subarray(k * size, (k + 1) * size);
}

/** Lays images out row-major on a grid (near-square unless `columns` is given), with a 1-pixel gap. */
export function tileGrid(batch: ImageBatch, columns?: number, gap = 1, background = 255): ImageBatch {
  const cols = columns ?? Math.ceil(Math.sqrt(batch.count));
  const rows = Math.ceil(batch.count / cols);
  const { height: h, width: w, channels: c } = batch;
  const gw = cols * w + (cols - 1) * gap;
  const gh = rows * h + (rows - 1) * gap;
  const out = new Uint8Array(gw * gh * c).fill(background);
  for (let k = 0; k < batch.count; k++) {
    const x0 = (k % cols) * (w + gap);
    const y0 = Math.floor(k / cols) * (h + gap);
    const img = imageAt(batch, k);
    for (let y = 0; y < h; y++) out.set(img.subarray(y * w * c, (y + 1) * w * c), ((y0 + y) * gw + x0) * c);
  }
  return { data: out, count: 1, height: gh, width: gw, channels: c };
}

/** Writes a grid PNG, scaled up by an integer factor (nearest) so small images are visible; returns the PNG's bytes. */
export async function writeImageGrid(path: string, batch: ImageBatch, options: { columns?: number; scale?: number } = {}): Promise<Buffer> {
  const grid = tileGrid(batch, options.columns);
  const scale = options.scale ?? Math.max(1, Math.floor(256 / batch.width));
  let img = sharp(Buffer.from(grid.data.buffer, grid.data.byteOffset, grid.data.byteLength), {
    raw: { width: grid.width, height: grid.height, channels: grid.channels },
  });
  if (scale > 1) img = img.resize(grid.width * scale, grid.height * scale, { kernel: 'nearest' });
  const png = await img.png().toBuffer();
  writeFileAtomic(path, [png]);
  return png;
}

export async function writePng(path: string, pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<void> {
  writeFileAtomic(path, [await encodePng(pixels, width, height, channels)]);
}
