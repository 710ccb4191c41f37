// The training options as a TypeScript program sees them: every option with
// its unit and default, visible on hover. The checks and defaults themselves
// are the schema's (options.ts); a type test below keeps the two in step.
import type { Arch, PrecondChoice, TrainOptionsInput } from './options.js';
import type { Precision } from '../nn/precision.js';

/** What a run trains on and how: train.py's options, by their camel-case names. */
export interface TrainSettings {
  // ---- data ----
  /** Images: a folder or .zip of PNG/JPEG, an EDM dataset zip, or a built-in set (fashion-mnist, fashion-mnist-5k, fashion-mnist-2k, fashion-mnist-500, emoji). */
  data?: string;
  /** Where numbered run directories are created. Default 'runs'. */
  outdir?: string;
  /** Suffix of the run directory's name (letters, digits, '.', '-', '_'). */
  desc?: string;
  /** Write the run into `outdir` itself, not a numbered subfolder (train.py's --nosubdir). Default false. */
  nosubdir?: boolean;
  /** Train at this side in pixels (images are centre-cropped and resized). Default: the data's own. */
  resolution?: number;
  /** 1 (grey) or 3 (RGB). Default: the data's own. */
  channels?: 1 | 3;
  /** Use a fixed seeded subset of at most this many images. */
  maxImages?: number;
  /** Class-conditional (labels from dataset.json or the built-in set). Default false. */
  cond?: boolean;
  /** Add horizontally mirrored copies of the images. Default false. */
  xflip?: boolean;

  // ---- network ----
  /** ddpmpp, ncsnpp, adm (EDM's presets), or small (a CPU-sized DDPM++). Default 'ddpmpp'. */
  arch?: Arch;
  /** pedm (Patch Diffusion), or EDM's whole-image edm, vp, ve. Default 'pedm'. */
  precond?: PrecondChoice;
  /** Channel multiplier base (model_channels). Default: the preset's. */
  cbase?: number;
  /** Channel multipliers per resolution, e.g. [1, 2, 2, 2]. Default: the preset's. */
  cres?: number[];
  /** Residual blocks per resolution. Default: the preset's. */
  numBlocks?: number;
  /** Resolutions (pixels) with self-attention, e.g. [16]; [] for none. Default: the preset's. */
  attn?: number[];
  /** Dropout probability in [0, 1). Default 0.13 (small: 0). */
  dropout?: number;
  /** SongUNet: an implicit MLP on the coordinate channels before the first convolution (train.py's --implicit_mlp). Default false. */
  implicitMlp?: boolean;
  /** Drop class labels with this probability, for classifier-free guidance. Default 0. */
  labelDropout?: number;
  /** Latent Patch Diffusion in the Stable Diffusion VAE's latent space (train.py's --train_on_latents); needs `vae`. Default false. */
  latents?: boolean;
  /** With `latents`: the VAE (diffusers' sd-vae-ft-ema safetensors, or its folder). */
  vae?: string;
  /** With `latents`: encode the data set once and keep each posterior (a fresh sample is still drawn every time). Default false. */
  preEncode?: boolean;

  // ---- the method ----
  /** Training length in Mimg: millions of patch samples, the official counter. */
  duration?: number;
  /** Probability of a full-size round; 0.5 in the paper, 1 = plain EDM. Default 0.5 (whole-image preconditioners: 1). */
  realP?: number;
  /** Grow patch sizes over the run instead of drawing them at random. Default false. */
  progressive?: boolean;
  /** Coordinate ablation: the network keeps its coordinate inputs but sees zeros there, in training and sampling. Default false. */
  maskPos?: boolean;
  /** Augmentation probability in [0, 1] (EDM's AugmentPipe with train.py's transforms); 0 = off, official 0.12. Default 0. */
  augment?: number;
  /** Several processes: all train the same patch size each round (the official code draws per rank). Default false. */
  samePatchSize?: boolean;

  // ---- optimisation ----
  /** Images per optimizer step (per full-size round; smaller patches come in larger batches). Default 512 (small: 32). */
  batch?: number;
  /** Images per micro-batch; gradients accumulate when smaller than `batch`. Default: the whole per-process batch. */
  batchGpu?: number;
  /** Adam's learning rate. Default 1e-3. */
  lr?: number;
  /** Learning-rate warm-up, in kimg. Default 10,000 (small: 2). */
  lrRampup?: number;
  /** EMA half-life, in Mimg. Default 0.5 (small: 0.005). */
  ema?: number;
  /** EMA half-life ramp-up ratio; null for none (official --transfer). Default 0.05. */
  emaRampup?: number | null;
  /** The loss is multiplied by this before backward (train.py's --ls). Default 1. */
  lossScaling?: number;
  /** Random seed (0 … 2³¹−1). Default 0. */
  seed?: number;
  /** Start from this snapshot's EMA weights (ours, a run directory, or an official .pkl); the EMA ramp-up is then off unless `emaRampup` says. */
  transfer?: string;

  // ---- machine ----
  /** cpu, cuda, cuda:N or auto. Default 'auto'. */
  device?: string;
  /** libtorch's CPU threads. Default: the cores other processes leave free, re-checked every 2 s; a fixed number makes reruns bit-exact. */
  threads?: number;
  /**
   * fp32; bf16 (convolutions and matrix products in bfloat16, the rest float32); or fp16 (the official
   * --fp16: the UNet's image path in float16, group norms included; for GPUs without bf16, usually with
   * `lossScaling`). Default 'fp32'.
   */
  precision?: Precision;
  /** TF32 for float32 convolutions (cuDNN) and matrix products (cuBLAS) on CUDA; no effect on the CPU. Default false, as the official loop. */
  tf32?: boolean;
  /** Activations in channels-last (NHWC) memory order. Default false. */
  channelsLast?: boolean;
  /** Stop cleanly (state saved, resumable) after this many minutes of training in this process. */
  maxMinutes?: number;

  // ---- what it writes ----
  /** A status line, a stats.jsonl entry and a `tick` event every this many kimg. Default 50 (small: 1). */
  tick?: number;
  /** A network snapshot and a sample grid every this many ticks. Default 50. */
  snap?: number;
  /** A training state (what a resume continues from) every this many ticks. Default 500. */
  dump?: number;
  /** Images in each snapshot's sample grid (seeds 0 … n−1). Default 64. */
  gridSeeds?: number;
  /** Sampler steps for the grids and the metrics' samples. Default 18. */
  gridSteps?: number;
  /** Quality metrics of the EMA network at snapshots. Default none. */
  metrics?: ('fd-classifier' | 'kid-classifier' | 'swd')[];
  /** Compute the metrics every this many snapshots. Default 1. */
  metricsEvery?: number;
  /** Generated images per metric evaluation (seeds 0 … n−1). Default 1000. */
  metricsSamples?: number;
  /** Check the options, print them and the network's size (with `log`), and return null. Default false. */
  dryRun?: boolean;
}

/** Options that may change when a run is resumed; every other option comes from the saved state. */
export const RESUME_OVERRIDABLE = ['duration', 'maxMinutes', 'batchGpu', 'threads', 'device', 'precision', 'tf32', 'channelsLast', 'tick', 'snap', 'dump', 'gridSeeds', 'gridSteps', 'metrics', 'metricsEvery', 'metricsSamples'] as const;

/** The options a resumed run may change (and `dryRun`); every other one comes from its training state. */
export type ResumeSettings = Pick<TrainSettings, (typeof RESUME_OVERRIDABLE)[number] | 'dryRun'>;

/** A new run: `data` and `duration` are required. */
export interface NewRunSettings extends TrainSettings {
  data: string;
  duration: number;
  resume?: undefined;
}

/** A run continued from its latest training state (or the state file given). */
export interface ResumeRunSettings extends ResumeSettings {
  /** A run directory or a training-state file. */
  resume: string;
}

// The hand-written types and the schema must agree: a setting the schema does not know, or one typed
// differently, fails to compile here.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type SchemaKeys = Exclude<keyof TrainOptionsInput, 'resume'>;
const settingsMatchSchema: Exact<keyof TrainSettings, SchemaKeys> = true;
const settingsFitSchema: TrainSettings extends Omit<TrainOptionsInput, 'data' | 'duration'> ? true : false = true;
void settingsMatchSchema;
void settingsFitSchema;
