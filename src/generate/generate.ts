// `generate`: images from a trained snapshot, one PNG per seed (an image
// depends only on its seed, not on the batch it was drawn in) and a grid.
// Several processes (generate --nproc N, or torchrun) split the seeds as the
// official generate.py does; each writes its own images, rank 0 the grid, and
// the files are the same bytes as one process writes.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveDevice, saveThreads, useThreads } from '../tensor/index.js';
import { gatherInOrder, rankBatches } from '../distributed/split.js';
import { launcherThreads } from '../distributed/environment.js';
import { ProcessGroup } from '../distributed/process-group.js';
import { seedBatches } from '../diffusion/sampler.js';
import type { Discretization, Scaling, Schedule, Solver } from '../diffusion/ablation-sampler.js';
import { imageAt, writeImageGrid, writePng, type ImageBatch } from '../io/images.js';
import { createProgress } from '../util/progress.js';
import { checkSamplerSettings, DiffusionModel } from '../model/diffusion-model.js';
import type { Precision } from '../nn/precision.js';

/** The overview grid `generate` writes beside the samples (`metrics --images` on that folder leaves it out). */
export const GRID_FILE = 'grid.png';

/** What `generate` draws and where it writes it: generate.py's options by their library names. */
export interface GenerateRequest {
  /** A network snapshot (.safetensors), a run directory (its newest snapshot) or an official .pkl. */
  network: string;
  /** The folder the PNGs go to (made when missing). */
  outdir: string;
  /** One image per seed, NNNNNN.png by its seed; an image depends only on its seed. */
  seeds: number[];
  /** Images per network call (default 64); changes the speed, never the images. */
  batch?: number;
  /** Sampler steps (default 18). */
  steps?: number;
  /** Lowest noise level σ (default 0.002, clamped to the network's range). */
  sigmaMin?: number;
  /** Highest noise level σ (default 80, clamped to the network's range). */
  sigmaMax?: number;
  /** Time-step exponent ρ (default 7). */
  rho?: number;
  /** Stochasticity S_churn (default 0: deterministic); S_min, S_max and S_noise shape it as in EDM. */
  sChurn?: number;
  sMin?: number;
  sMax?: number;
  sNoise?: number;
  /** generate.py's ablation sampler: any of these given runs it instead of EDM's Heun sampler (as the official). */
  solver?: Solver;
  discretization?: Discretization;
  schedule?: Schedule;
  scaling?: Scaling;
  /** A class-conditional network: this class for every image (default: a random class per seed). */
  classIndex?: number | null;
  /** Classifier-free guidance scale (a network trained with label dropout). */
  cfg?: number | null;
  /**
   * Canvas side in the network's pixels (default its resolution; larger canvases extrapolate); xStart and
   * yStart offset it in the coordinate grid.
   */
  imageSize?: number;
  xStart?: number;
  yStart?: number;
  /** Put each image in a subfolder per 1,000 seeds (000000/, 001000/, …), as generate.py --subdirs. */
  subdirs?: boolean;
  /** Write grid.png of all the images beside them (default true). */
  grid?: boolean;
  /** cpu, cuda, cuda:N or auto (default auto). */
  device?: string;
  /**
   * CPU threads (default: the cores other processes leave free); a fixed count makes reruns bit-for-bit
   * identical.
   */
  threads?: number;
  /** The network's arithmetic (src/nn/precision.ts); default fp32. */
  precision?: Precision;
  /** Run the network's convolutions in channels-last memory order (default false). */
  channelsLast?: boolean;
  /** No progress bar. */
  quiet?: boolean;
  /** Zeros in the coordinate channels (generate.py's --mask_pos for a network trained with train --mask-pos; default: as it was trained). */
  maskPos?: boolean;
  /** The VAE that decodes a latent network's samples (default: the one its snapshot names). */
  vae?: string;
}

/** What `generate` wrote, and how fast. */
export interface GenerateSummary {
  /** The PNGs written (this process's share when several processes split the seeds). */
  files: string[];
  /** grid.png, or null when not written (grid false, or a rank other than 0). */
  gridPath: string | null;
  /** Wall-clock seconds of sampling and writing (loading the network not included). */
  seconds: number;
  /** This process's images per second over those seconds. */
  imagesPerSec: number;
}

/**
 * Samples one PNG per seed from a trained network into `outdir`, and grid.png: the `generate` command as a
 * function. Under torchrun or generate --nproc the processes split the seeds; the files are the bytes one
 * process writes.
 */
export async function generate(r: GenerateRequest): Promise<GenerateSummary> {
  if (!r.seeds.length) throw new Error('--seeds: no seeds given');
  // The sampler's settings before the network loads: a typo fails in milliseconds.
  checkSamplerSettings(r);
  const dist = await ProcessGroup.joinFromEnvironment(process.env, r.device);
  const restoreThreads = saveThreads();
  useThreads(r.threads ?? (dist ? launcherThreads() : undefined));
  const device = dist ? dist.rankDevice(resolveDevice(r.device)) : resolveDevice(r.device);
  const model = DiffusionModel.load(r.network, { device, precision: r.precision, channelsLast: r.channelsLast, vae: r.vae, maskPos: r.maskPos });
  try {
    mkdirSync(r.outdir, { recursive: true });
    const files: string[] = [];
    const collected: ImageBatch[] = [];
    const start = Date.now();
    const myIndices = dist ? rankBatches(r.seeds.length, r.batch ?? 64, dist.rank, dist.worldSize) : null;
    const batches = myIndices ? myIndices.map((ix) => ix.map((i) => r.seeds[i]!)) : seedBatches(r.seeds, r.batch ?? 64);
    const mine = batches.reduce((n, b) => n + b.length, 0);
    const progress = r.quiet || (dist && !dist.isMain) ? null : createProgress({ total: mine, label: dist ? `generate (rank 0 of ${dist.worldSize})` : 'generate', unit: 'img' });
    let done = 0;
    for (const seeds of batches) {
      const batch = model.sample({ ...r, seeds, batch: seeds.length });
      for (let k = 0; k < seeds.length; k++) {
        const seed = seeds[k]!;
        const dir = r.subdirs ? join(r.outdir, String(seed - (seed % 1000)).padStart(6, '0')) : r.outdir;
        if (r.subdirs) mkdirSync(dir, { recursive: true });
        const file = join(dir, `${String(seed).padStart(6, '0')}.png`);
        await writePng(file, imageAt(batch, k), batch.width, batch.height, batch.channels);
        files.push(file);
      }
      if (r.grid !== false) collected.push(batch);
      done += seeds.length;
      progress?.update(done);
    }
    progress?.stop();
    let gridPath: string | null = null;
    if (r.grid !== false && (collected.length || dist)) {
      const side = (r.imageSize ?? model.net.imgResolution) * (model.resolution / model.net.imgResolution);
      const size = side * side * model.channels;
      let all: Uint8Array = new Uint8Array(collected.reduce((n, b) => n + b.data.length, 0));
      let at = 0;
      for (const b of collected) {
        all.set(b.data, at);
        at += b.data.length;
      }
      if (dist) all = gatherInOrder(dist, r.seeds.length, myIndices!.flat(), all, size, 'the images for the grid');
      gridPath = dist && !dist.isMain ? null : join(r.outdir, GRID_FILE);
      if (gridPath) await writeImageGrid(gridPath, { data: all, count: r.seeds.length, height: side, width: side, channels: model.channels as 1 | 3 });
    }
    // Every rank's files are written when the command returns.
    dist?.barrier('the end of generation');
    const seconds = (Date.now() - start) / 1000;
    return { files, gridPath, seconds, imagesPerSec: done / seconds };
  } finally {
    model.dispose();
    restoreThreads();
  }
}

/** The largest seed: a 32-bit unsigned integer. */
export const MAX_SEED = 2 ** 32 - 1;

/** Parses "0-63", "1,2,5-9" (EDM's seed syntax) into a list. */
export function parseSeedList(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`--seeds: '${part}' is not a seed or a range like 0-63`);
    const a = Number(m[1]), b = m[2] !== undefined ? Number(m[2]) : a;
    // Seeds are 32-bit (as generate.py's torch generators take them).
    for (const [text, v] of [[m[1]!, a], [m[2], b]] as const)
      if (text !== undefined && !(v <= MAX_SEED)) throw new Error(`--seeds: ${text} is beyond the largest seed, ${MAX_SEED} (2^32 − 1)`);
    if (b < a) throw new Error(`--seeds: range '${part}' runs backwards`);
    if (out.length + (b - a + 1) > 10_000_000) throw new Error(`--seeds: '${spec}' names more than 10,000,000 seeds`);
    for (let s = a; s <= b; s++) out.push(s);
  }
  return out;
}
