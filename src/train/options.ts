// Training options: one schema gives the types, the defaults, and the checks
// that run before any work starts. Defaults follow the official train.py
// where it has one; `--arch small` selects a CPU-sized network and schedule.
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { PRECISIONS } from '../nn/precision.js';

export const ARCHS = ['ddpmpp', 'ncsnpp', 'adm', 'small'] as const;
export type Arch = (typeof ARCHS)[number];
/**
 * Preconditioning and loss, train.py's --precond: 'pedm' is Patch Diffusion
 * (Patch_EDMPrecond + Patch_EDMLoss); 'edm', 'vp' and 've' are EDM's
 * whole-image EDMPrecond/EDMLoss, VPPrecond/VPLoss and VEPrecond/VELoss,
 * with no coordinate channels.
 */
export const PRECONDS = ['pedm', 'edm', 'vp', 've'] as const;
export type PrecondChoice = (typeof PRECONDS)[number];

const positiveInt = z.number().int().positive();
/** Bounds on the counts that size an allocation (a batch, a grid, a metric's samples): a typo must not ask for terabytes. */
const MAX_BATCH = 65536;
const intList = z.array(z.number().int().positive().max(64)).min(1).max(8);

export const trainOptionsSchema = z
  .object({
    data: z.string().min(1),
    outdir: z.string().min(1).default('runs'),
    desc: z.string().regex(/^[\w.-]*$/, 'use letters, digits, ".", "-" or "_"').optional(),
    resolution: positiveInt.min(8).max(4096).optional(),
    channels: z.union([z.literal(1), z.literal(3)]).optional(),
    maxImages: positiveInt.max(100_000_000).optional(),
    cond: z.boolean().default(false),
    xflip: z.boolean().default(false),

    arch: z.enum(ARCHS).default('ddpmpp'),
    precond: z.enum(PRECONDS).default('pedm'),
    /** Latent diffusion in the Stable Diffusion VAE's latent space (train.py's --train_on_latents); the VAE file is `vae`. */
    latents: z.boolean().default(false),
    vae: z.string().min(1).optional(),
    /** Encode the dataset once (posterior mean and std kept) instead of every batch; a fresh sample is still drawn each time. */
    preEncode: z.boolean().default(false),
    /** Augmentation probability (EDM's AugmentPipe with train.py's choice of transforms); 0 = off. */
    augment: z.number().min(0).max(1).default(0),
    cbase: positiveInt.max(4096).optional(),
    cres: intList.optional(),
    numBlocks: positiveInt.max(64).optional(),
    attn: z.array(z.number().int().positive()).optional(),
    dropout: z.number().min(0).lt(1).optional(),
    /** SongUNet's implicit MLP on the coordinate channels (train.py's --implicit_mlp). */
    implicitMlp: z.boolean().default(false),
    labelDropout: z.number().min(0).lt(1).default(0),

    duration: z.number().positive().max(1_000_000), // Mimg of patch samples, as the official counter
    batch: positiveInt.max(MAX_BATCH).optional(),
    batchGpu: positiveInt.max(MAX_BATCH).optional(),
    lr: z.number().positive().optional(),
    lrRampup: z.number().min(0).optional(), // kimg
    ema: z.number().min(0).optional(), // Mimg half-life
    emaRampup: z.number().min(0).nullable().default(0.05),
    /** train.py's --ls: the loss is multiplied by this before backward (the gradients with it). */
    lossScaling: z.number().positive().default(1),
    /** Default 0.5 for 'pedm'; EDM's whole-image preconditioners train at full size only (1). */
    realP: z.number().min(0).max(1).optional(),
    /** Coordinate-channel ablation: the network keeps its two coordinate inputs but sees zeros there, in training and sampling. */
    maskPos: z.boolean().default(false),
    progressive: z.boolean().default(false),
    /**
     * Data-parallel runs: every rank trains the same patch size in each round
     * (one shared draw). The official code lets each rank draw its own, and a
     * step then waits for the rank that drew the largest patches.
     */
    samePatchSize: z.boolean().default(false),

    /** Stop cleanly (state saved, resumable) after this many minutes of training in this process. */
    maxMinutes: z.number().positive().optional(),
    tick: z.number().positive().optional(), // kimg between status lines
    snap: positiveInt.default(50), // ticks between network snapshots (+ sample grid)
    dump: positiveInt.default(500), // ticks between training states
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
    threads: positiveInt.max(4 * availableParallelism(), `expected an integer from 1 to ${4 * availableParallelism()} (4 × this machine's ${availableParallelism()} cores)`).optional(),
    device: z.string().default('auto'),
    /** bf16: convolutions and matrix products in bfloat16, the rest float32; fp16: the official --fp16 (src/nn/precision.ts). */
    precision: z.enum(PRECISIONS).default('fp32'),
    /** TF32 for float32 cuDNN convolutions and cuBLAS matrix products on CUDA (process-wide; train restores it after). Off as in the official loop. */
    tf32: z.boolean().default(false),
    /** Activations in channels-last (NHWC) memory order. */
    channelsLast: z.boolean().default(false),
    gridSeeds: positiveInt.max(4096).default(64),
    /** Sample-quality metrics computed on the EMA network every `metricsEvery` snapshots (empty: none). */
    metrics: z.array(z.enum(['fd-classifier', 'kid-classifier', 'swd'])).default([]),
    metricsEvery: positiveInt.default(1),
    metricsSamples: positiveInt.max(1_000_000).default(1000),
    gridSteps: positiveInt.max(10_000).default(18),
    resume: z.string().optional(),
    /** Start from this snapshot's EMA weights (ours or an official .pkl); the EMA ramp-up is then off, as the official --transfer. */
    transfer: z.string().min(1).optional(),
    dryRun: z.boolean().default(false),
    /** train.py's --nosubdir: write the run into --outdir itself, not a numbered subfolder. */
    nosubdir: z.boolean().default(false),
  })
  .strict();

export type TrainOptionsInput = z.input<typeof trainOptionsSchema>;
export type TrainOptions = z.output<typeof trainOptionsSchema>;

/** Per-architecture defaults that the user did not override. */
export interface ArchDefaults {
  batch: number;
  lr: number;
  lrRampup: number;
  ema: number;
  dropout: number;
  tick: number;
}

/**
 * The official defaults (train.py: batch 512, lr 1e-3, EMA 0.5 Mimg, dropout
 * 0.13, tick 50 kimg, a fixed 10 Mimg learning-rate ramp) are sized for GPU
 * clusters; `small` scales batch, ramp and EMA to a few tens of kimg on a CPU.
 */
export const ARCH_DEFAULTS: Record<Arch, ArchDefaults> = {
  ddpmpp: { batch: 512, lr: 1e-3, lrRampup: 10000, ema: 0.5, dropout: 0.13, tick: 50 },
  ncsnpp: { batch: 512, lr: 1e-3, lrRampup: 10000, ema: 0.5, dropout: 0.13, tick: 50 },
  adm: { batch: 512, lr: 1e-3, lrRampup: 10000, ema: 0.5, dropout: 0.13, tick: 50 },
  small: { batch: 32, lr: 1e-3, lrRampup: 2, ema: 0.005, dropout: 0, tick: 1 },
};

export type ResolvedTrainOptions = TrainOptions & ArchDefaults & { batchGpu: number; realP: number };

function formatIssues(error: z.ZodError, input: unknown): string {
  return error.issues
    .map((i) => {
      // lossScaling is train.py's --ls on the command line.
      const key = i.path.length ? String(i.path[0]) : null;
      const where = key === null ? 'options' : key === 'lossScaling' ? '--ls' : `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
      // Name the offending value too (zod's messages give only the rule).
      const value = i.path.length && typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[String(i.path[0])] : undefined;
      return `${where}: ${i.message}${value !== undefined ? ` (got ${JSON.stringify(value)})` : ''}`;
    })
    .join('\n');
}

/**
 * Validates and fills defaults; throws one Error listing every problem.
 * `worldSize` ranks share `batch` (the global batch, as the official code):
 * each runs batch / worldSize images per step in rounds of `batchGpu`.
 */
export function resolveTrainOptions(input: TrainOptionsInput, worldSize = 1): ResolvedTrainOptions {
  const parsed = trainOptionsSchema.safeParse(input);
  if (!parsed.success) throw new Error(`invalid training options:\n${formatIssues(parsed.error, input)}`);
  const o = parsed.data;
  const d = ARCH_DEFAULTS[o.arch];
  if (o.preEncode && !o.latents) throw new Error('invalid training options:\n--pre-encode: only with --latents (it stores the VAE posterior of every image)');
  if (o.vae !== undefined && !o.latents) throw new Error('invalid training options:\n--vae: only with --latents');
  if (o.precond !== 'pedm') {
    if (o.realP !== undefined && o.realP !== 1)
      throw new Error(`invalid training options:\n--real-p: --precond ${o.precond} trains on whole images (EDM's ${o.precond.toUpperCase()}Precond takes no coordinate channels), so only 1 is possible (got ${o.realP}); patch training is --precond pedm`);
    if (o.maskPos) throw new Error(`invalid training options:\n--mask-pos: --precond ${o.precond} has no coordinate channels to mask`);
    if (o.progressive) throw new Error(`invalid training options:\n--progressive: --precond ${o.precond} trains on whole images; the progressive patch schedule needs --precond pedm`);
  }
  const batch = o.batch ?? d.batch;
  if (batch % worldSize !== 0) throw new Error(`invalid training options:\n--batch: ${batch} images per step cannot be shared by ${worldSize} processes (use a multiple of ${worldSize})`);
  const perRank = batch / worldSize;
  const batchGpu = o.batchGpu ?? perRank;
  if (perRank % batchGpu !== 0)
    throw new Error(`invalid training options:\n--batch-gpu: ${batchGpu} must divide the ${perRank} images per step of each of ${worldSize} process${worldSize > 1 ? 'es' : ''} (--batch ${batch})`);
  return {
    ...o,
    realP: o.realP ?? (o.precond === 'pedm' ? 0.5 : 1),
    batch,
    batchGpu,
    lr: o.lr ?? d.lr,
    lrRampup: o.lrRampup ?? d.lrRampup,
    ema: o.ema ?? d.ema,
    dropout: o.dropout ?? d.dropout,
    tick: o.tick ?? d.tick,
  };
}

/**
 * Whether a run computes float32 convolutions and matrix products in TF32 on
 * CUDA: --tf32, or PD_ALLOW_TF32=1 (the variable that also governs generate
 * and library use; see applyCudaMathOptions). Off otherwise, as the official loop.
 */
export function runUsesTf32(o: Pick<ResolvedTrainOptions, 'tf32'>, env: NodeJS.ProcessEnv = process.env): boolean {
  return o.tf32 || env.PD_ALLOW_TF32 === '1';
}

/** "TF32 off", "TF32 on", or on the CPU, where it changes nothing, "TF32 on (CUDA only: no effect on the CPU)": for the run's device line. */
export function describeTf32(on: boolean, device: string): string {
  return `TF32 ${on ? 'on' : 'off'}${on && !device.startsWith('cuda') ? ' (CUDA only: no effect on the CPU)' : ''}`;
}
