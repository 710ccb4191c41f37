// Resampling and padding of whole in-memory datasets, for built-ins stored at
// one size (Fashion-MNIST 28×28) but wanted at another.
import sharp from 'sharp';
import { ArrayDataset, checkResolution, chwToHwc, collectLabels, hwcToChw, type ImageDataset } from './dataset.js';
import { startProgress, type ItemProgressOptions } from '../util/progress.js';

/**
 * Pad square CHW images of side `from` to side `to` with `value`, centred
 * ((to-from)/2 on each side; the extra pixel of an odd difference goes
 * right/bottom). Fashion-MNIST 28→32 puts 2 zero pixels on every side.
 */
export function padImages(pixels: Uint8Array, count: number, channels: number, from: number, to: number, value = 0): Uint8Array {
  if (to < from) throw new RangeError(`padImages: cannot pad ${from} down to ${to}`);
  const off = Math.floor((to - from) / 2);
  const out = new Uint8Array(count * channels * to * to);
  if (value !== 0) out.fill(value);
  for (let p = 0; p < count * channels; p++) {
    const src = p * from * from;
    const dst = p * to * to;
    for (let y = 0; y < from; y++) out.set(pixels.subarray(src + y * from, src + (y + 1) * from), dst + (y + off) * to + off);
  }
  return out;
}

/** Resize every image with Lanczos (sharp lanczos3). Same size returns `ds` unchanged. */
export async function resizeDataset(ds: ImageDataset, resolution: number, options: ItemProgressOptions & { concurrency?: number } = {}): Promise<ImageDataset> {
  checkResolution(resolution);
  if (resolution === ds.resolution) return ds;
  const size = ds.channels * resolution * resolution;
  const pixels = new Uint8Array(ds.length * size);
  const progress = startProgress('resizing', ds.length, options);
  const chunk = Math.max(1, options.concurrency ?? 16);
  try {
    for (let start = 0; start < ds.length; start += chunk) {
      const end = Math.min(ds.length, start + chunk);
      await Promise.all(
        Array.from({ length: end - start }, async (_, k) => {
          const i = start + k;
          const hwc = chwToHwc(ds.image(i), ds.channels, ds.resolution, ds.resolution);
          let img = sharp(hwc, { raw: { width: ds.resolution, height: ds.resolution, channels: ds.channels } }).resize(resolution, resolution, {
            kernel: 'lanczos3',
            fit: 'fill',
          });
          // Without this sharp would output a 1-channel input as RGB.
          if (ds.channels === 1) img = img.toColourspace('b-w');
          const raw = await img.raw().toBuffer();
          if (raw.length !== size) throw new Error(`resizeDataset: sharp returned ${raw.length} bytes for image ${i}, expected ${size}`);
          hwcToChw(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), ds.channels, resolution, resolution, pixels.subarray(i * size, (i + 1) * size));
        }),
      );
      progress.tick(end - start);
    }
  } finally {
    progress.stop();
  }
  return new ArrayDataset({
    name: ds.name,
    resolution,
    channels: ds.channels,
    pixels,
    labels: collectLabels(ds),
    labelDim: ds.labelDim,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    ...(ds.notice !== undefined ? { notice: ds.notice } : {}),
  });
}
