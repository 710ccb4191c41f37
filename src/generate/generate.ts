// `generate`: images from a trained snapshot, one PNG per seed (an image
// depends only on its seed, not on the batch it was drawn in) and a grid.
// Several processes (generate --nproc N, or torchrun) split the seeds as the
// official generate.py does; each writes its own images, rank 0 the grid, and
// the files are the same bytes as one process writes.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, resolveDevice, scope, useThreads, zerosLike } from '../tensor/index.js';
import { decodeLatents, openVae } from '../latents/codec.js';
import { gatherInOrder, rankBatches } from '../distributed/split.js';
import { launcherThreads } from '../distributed/environment.js';
import { ProcessGroup } from '../distributed/process-group.js';
import { generateImages, seedBatches, toUint8 } from '../diffusion/sampler.js';
import { ablationSchedule, type Discretization, type Scaling, type Schedule, type Solver } from '../diffusion/ablation-sampler.js';
import { imageAt, writeImageGrid, writePng, type ImageBatch } from '../io/images.js';
import { createProgress } from '../util/progress.js';
import { loadSnapshotNetwork } from './load-network.js';
import { checkPrecisionSupport, type Precision } from '../nn/precision.js';

/** The overview grid `generate` writes beside the samples (`metrics --images` on that folder leaves it out). */
export const GRID_FILE = 'grid.png';

export interface GenerateRequest {
  network: string;
  outdir: string;
  seeds: number[];
  batch?: number;
  steps?: number;
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  sChurn?: number;
  sMin?: number;
  sMax?: number;
  sNoise?: number;
  /** generate.py's ablation sampler: any of these given runs it instead of EDM's Heun sampler (as the official). */
  solver?: Solver;
  discretization?: Discretization;
  schedule?: Schedule;
  scaling?: Scaling;
  classIndex?: number | null;
  cfg?: number | null;
  imageSize?: number;
  xStart?: number;
  yStart?: number;
  subdirs?: boolean;
  grid?: boolean;
  device?: string;
  threads?: number;
  /** The network's arithmetic (src/nn/precision.ts); default fp32. */
  precision?: Precision;
  channelsLast?: boolean;
  quiet?: boolean;
  /** Zeros in the coordinate channels (generate.py's --mask_pos for a network trained with train --mask-pos; default: as it was trained). */
  maskPos?: boolean;
  /** The VAE that decodes a latent network's samples (default: the one its snapshot names). */
  vae?: string;
}

export interface GenerateSummary {
  files: string[];
  gridPath: string | null;
  seconds: number;
  imagesPerSec: number;
}

export async function generate(r: GenerateRequest): Promise<GenerateSummary> {
  if (!r.seeds.length) throw new Error('--seeds: no seeds given');
  if (r.steps !== undefined && (!Number.isInteger(r.steps) || r.steps < 1)) throw new Error(`--steps must be a positive integer, got ${r.steps}`);
  if (r.cfg !== undefined && r.cfg !== null && !(r.cfg >= 0)) throw new Error(`--cfg must be >= 0, got ${r.cfg}`);
  const dist = await ProcessGroup.joinFromEnvironment(process.env, r.device);
  useThreads(r.threads ?? (dist ? launcherThreads() : undefined));
  const resolved = resolveDevice(r.device);
  const device = dist ? dist.rankDevice(resolved) : resolved;
  checkPrecisionSupport(r.precision ?? 'fp32', device);
  const { net, info } = loadSnapshotNetwork(r.network, device);
  net.setCompute({ precision: r.precision ?? 'fp32', channelsLast: r.channelsLast ?? false });
  const { labelDim } = info.dataset;
  // The coordinate grid is normalised over the network's own resolution (the latent one for a latent network).
  const resolution = net.imgResolution;
  const channels = net.outChannels;
  // A latent network's samples are decoded by the VAE its snapshot names (or --vae).
  const latentVaePath = r.vae ?? info.latent?.vae;
  if (!latentVaePath && channels === 4)
    throw new Error(`${r.network}: this network makes 4-channel latents (a latent Patch Diffusion model, e.g. an official --train_on_latents snapshot); pass --vae with the Stable Diffusion VAE that decodes them`);
  const vae = latentVaePath ? openVae(latentVaePath, device, '--vae') : null;
  if (vae && vae.config.latentChannels !== channels)
    throw new Error(`--vae: ${latentVaePath} decodes ${vae.config.latentChannels}-channel latents, but the network makes ${channels} channels`);
  const imageChannels = vae ? vae.config.outChannels : channels;
  const maskPos = r.maskPos ?? info.trainingOptions?.maskPos === true;
  const factor = vae ? vae.downsampleFactor : 1;
  if (r.cfg != null && r.cfg !== 1 && !labelDim) throw new Error('--cfg needs a class-conditional network; this one is unconditional');
  mkdirSync(r.outdir, { recursive: true });

  const files: string[] = [];
  const collected: ImageBatch[] = [];
  const start = Date.now();
  const myIndices = dist ? rankBatches(r.seeds.length, r.batch ?? 64, dist.rank, dist.worldSize) : null;
  const batches = myIndices ? myIndices.map((ix) => ix.map((i) => r.seeds[i]!)) : seedBatches(r.seeds, r.batch ?? 64);
  const mine = batches.reduce((n, b) => n + b.length, 0);
  const progress = r.quiet || (dist && !dist.isMain) ? null : createProgress({ total: mine, label: dist ? `generate (rank 0 of ${dist.worldSize})` : 'generate', unit: 'img' });
  const ablation = r.solver || r.discretization || r.schedule || r.scaling
    ? { solver: r.solver, discretization: r.discretization, schedule: r.schedule, scaling: r.scaling }
    : null;
  if (ablation) ablationSchedule({ ...ablation, numSteps: r.steps, sigmaMin: r.sigmaMin, sigmaMax: r.sigmaMax, rho: r.rho, netSigmaMin: net.sigmaMin, netSigmaMax: net.sigmaMax });
  let done = 0;
  for (const seeds of batches) {
    const batch = noGrad(() => {
      // A plain EDM network (EDMPrecond, from an official .pkl) takes no coordinate channels: the grid is not passed.
      const { images } = generateImages((x, s, pos, labels) => net.forward(x, s, net.positionChannels ? (maskPos ? zerosLike(pos!) : pos) : null, labels ?? null), {
        seeds, channels, resolution, labelDim, device,
        numSteps: r.steps ?? 18, sigmaMin: r.sigmaMin, sigmaMax: r.sigmaMax, rho: r.rho,
        sChurn: r.sChurn, sMin: r.sMin, sMax: r.sMax, sNoise: r.sNoise,
        classIndex: r.classIndex ?? null, cfg: r.cfg ?? null,
        imageSize: r.imageSize, xStart: r.xStart, yStart: r.yStart,
        netSigmaMin: net.sigmaMin, netSigmaMax: net.sigmaMax, ablation,
      });
      try {
        return vae ? scope(() => toUint8(decodeLatents(vae, images))) : toUint8(images);
      } finally {
        images.dispose();
      }
    });
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
    const side = (r.imageSize ?? resolution) * factor;
    const size = side * side * imageChannels;
    let all: Uint8Array = new Uint8Array(collected.reduce((n, b) => n + b.data.length, 0));
    let at = 0;
    for (const b of collected) {
      all.set(b.data, at);
      at += b.data.length;
    }
    if (dist) all = gatherInOrder(dist, r.seeds.length, myIndices!.flat(), all, size, 'the images for the grid');
    gridPath = dist && !dist.isMain ? null : join(r.outdir, GRID_FILE);
    if (gridPath) await writeImageGrid(gridPath, { data: all, count: r.seeds.length, height: side, width: side, channels: imageChannels as 1 | 3 });
  }
  // Every rank's files are written when the command returns.
  dist?.barrier('the end of generation');
  net.dispose();
  vae?.dispose();
  const seconds = (Date.now() - start) / 1000;
  return { files, gridPath, seconds, imagesPerSec: done / seconds };
}

/** Parses "0-63", "1,2,5-9" (EDM's seed syntax) into a list. */
export function parseSeedList(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`--seeds: '${part}' is not a seed or a range like 0-63`);
    const a = Number(m[1]), b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a) throw new Error(`--seeds: range '${part}' runs backwards`);
    if (b - a > 10_000_000) throw new Error(`--seeds: range '${part}' is too large`);
    for (let s = a; s <= b; s++) out.push(s);
  }
  return out;
}
