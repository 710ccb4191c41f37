// Latent Patch Diffusion (the official train.py --train_on_latents): the
// diffusion model works on the Stable Diffusion VAE's latents instead of
// pixels. Training encodes every batch of images in [−1, 1] with the frozen
// VAE and draws a sample of the posterior, times the scaling factor
// (0.18215), BEFORE cropping; sampling decodes z / 0.18215 back to images.
//
// Encoding on the fly is the official behaviour and costs one VAE encoder
// pass per image per step. Pre-encoding (--pre-encode) runs the encoder once
// per dataset image (and per mirrored copy with --xflip), keeps the
// posterior's mean and standard deviation, and draws mean + std·ε afresh each
// time an image is used: the same distribution as the official, with the
// same draw (one randn of the latents' shape) from the same stream.
import { existsSync } from 'node:fs';
import { fillBatch } from '../data/sampler.js';
import type { ImageDataset } from '../data/dataset.js';
import { loadAutoencoderKL, VAE_DOWNLOAD_URL, VAE_WEIGHTS_FILE } from '../networks/autoencoder-kl-file.js';
import type { AutoencoderKL } from '../networks/autoencoder-kl.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { cat } from '../tensor/creation.js';
import { noGrad } from '../tensor/autograd.js';
import type { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { tensor } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';

/** Opens the VAE named by `path` (a diffusers safetensors file or its folder), or says where to get one. */
export function openVae(path: string | undefined, device: Device, option = '--vae'): AutoencoderKL {
  const where =
    `the Stable Diffusion VAE: download ${VAE_WEIGHTS_FILE} and config.json from ${VAE_DOWNLOAD_URL} ` +
    `(about 335 MB; the official code's stabilityai/sd-vae-ft-ema) and pass the file or its folder as ${option}`;
  if (path === undefined) throw new Error(`${option}: latent diffusion needs ${where}`);
  if (!existsSync(path)) throw new Error(`${option}: ${path} does not exist; latent diffusion needs ${where}`);
  return loadAutoencoderKL(path, { device });
}

/** What a latent network's snapshot records about its latent space. */
export interface LatentInfo {
  /** The VAE file the run used (generate opens it unless told otherwise). */
  vae: string;
  scalingFactor: number;
  /** Image side / latent side. */
  downsampleFactor: number;
  latentChannels: number;
}

export function latentInfo(vae: AutoencoderKL, path: string): LatentInfo {
  return { vae: path, scalingFactor: vae.config.scalingFactor, downsampleFactor: vae.downsampleFactor, latentChannels: vae.config.latentChannels };
}

/** Checks that a dataset can be encoded by this VAE: its channels, and a side the VAE divides. */
export function checkLatentDataset(vae: AutoencoderKL, dataset: ImageDataset, vaePath: string): void {
  if (dataset.channels !== vae.config.inChannels)
    throw new Error(`--latents: ${vaePath} encodes ${vae.config.inChannels}-channel images, but '${dataset.name}' has ${dataset.channels} (use --channels ${vae.config.inChannels})`);
  if (dataset.resolution % vae.downsampleFactor !== 0)
    throw new Error(`--latents: the resolution ${dataset.resolution} is not a multiple of the VAE's downsampling factor ${vae.downsampleFactor} (choose --resolution accordingly)`);
}

/** Images in [−1, 1] → the diffusion model's latents: a posterior sample × scaling factor (float32). */
export function encodeToLatents(vae: AutoencoderKL, images: Tensor, generator: Generator): Tensor {
  return noGrad(() =>
    scope(() => {
      const posterior = vae.encode(images);
      return vae.scaleLatents(vae.sample(posterior, generator));
    }),
  );
}

/** The diffusion model's latents → images roughly in [−1, 1] (z / scaling factor, then the decoder). */
export function decodeLatents(vae: AutoencoderKL, latents: Tensor): Tensor {
  return noGrad(() => scope(() => vae.decode(vae.unscaleLatents(latents.to('float32')))));
}

/**
 * The posterior (mean, std) of every dataset item, x-flipped copies after the
 * originals (indices as the data sampler's), computed once.
 */
export class PreEncodedLatents {
  private constructor(
    readonly mean: Tensor,
    readonly std: Tensor,
  ) {}

  /** Encodes `count` items (dataset.length, or twice that with x-flips) in batches of `batch`. */
  static encode(vae: AutoencoderKL, dataset: ImageDataset, count: number, batch: number, onProgress?: (done: number) => void): PreEncodedLatents {
    const R = dataset.resolution, C = dataset.channels;
    const means: Tensor[] = [];
    const stds: Tensor[] = [];
    try {
      for (let start = 0; start < count; start += batch) {
        const indices = Array.from({ length: Math.min(batch, count - start) }, (_, k) => start + k);
        const { images } = fillBatch(dataset, indices);
        const [mean, std] = noGrad(() =>
          scope(() => {
            const x = tensor(images, [indices.length, C, R, R], { dtype: 'uint8' }).to({ dtype: 'float32', device: vae.encoder.convIn.weight!.device }).div(127.5).sub(1);
            const posterior = vae.encode(x);
            return [posterior.mean.to('cpu'), vae.std(posterior).to('cpu')] as const;
          }),
        );
        means.push(mean);
        stds.push(std);
        onProgress?.(start + indices.length);
      }
      return new PreEncodedLatents(cat(means, 0), cat(stds, 0));
    } finally {
      for (const t of [...means, ...stds]) t.dispose();
    }
  }

  get count(): number {
    return this.mean.shape[0]!;
  }

  /** mean + std·ε for the items `indices`, scaled: ε is one randn of the latents' shape, as a fresh encoder sample. */
  sample(indices: ArrayLike<number>, generator: Generator, scalingFactor: number, device: Device): Tensor {
    return noGrad(() =>
      scope(() => {
        const idx = tensor(Int32Array.from(indices), [indices.length], { dtype: 'int64' });
        const mean = this.mean.indexSelect(0, idx).to({ device });
        const std = this.std.indexSelect(0, idx).to({ device });
        const eps = generator.randn(mean.shape, { device });
        return mean.add(std.mul(eps)).mul(scalingFactor);
      }),
    );
  }

  save(path: string, meta: Record<string, string>): void {
    writeSafetensors(path, new Map([['mean', this.mean], ['std', this.std]]), meta);
  }

  /** The cache at `path` when its metadata matches `expected` (else null: encode again). */
  static load(path: string, expected: Record<string, string>): PreEncodedLatents | null {
    if (!existsSync(path)) return null;
    const { tensors, metadata } = readSafetensors(path);
    const mean = tensors.get('mean'), std = tensors.get('std');
    if (!mean || !std || Object.entries(expected).some(([k, v]) => metadata[k] !== v)) {
      for (const t of tensors.values()) t.dispose();
      return null;
    }
    return new PreEncodedLatents(mean, std);
  }

  dispose(): void {
    this.mean.dispose();
    this.std.dispose();
  }
}
