// `patch-diffusion train`: flags → validated options → training run.
import { Command, Option } from 'commander';
import { ARCHS } from '../../train/options.js';
import { PRECISIONS } from '../../nn/precision.js';
import { train, type TrainRequest } from '../../train/train.js';
import { RESUME_OVERRIDABLE } from '../../train/settings.js';
import { BUILTIN_DATASETS } from '../../data/builtin.js';
import { flagOf } from '../../train/resume.js';
import { parseNumber as num, parseNumberList, parsePort } from '../parse.js';
import { addLaunchOptions, launchIfAsked } from '../launch-options.js';
import { abortOnSignals, signalExitCode } from '../stop-signals.js';

export function trainCommand(): Command {
  return addLaunchOptions(new Command('train'))
    .description('train a Patch Diffusion model (EDM preconditioning on random patches with coordinate channels)')
    .option('--data <spec>', `images: a folder or .zip of PNG/JPEG, or a built-in set: ${Object.keys(BUILTIN_DATASETS).join(', ')}`)
    .option('--outdir <dir>', 'where run directories are created', 'runs')
    .option('--desc <text>', 'suffix for the run directory name')
    .option('--nosubdir', 'write the run into --outdir itself instead of a new numbered folder')
    .option('--resolution <n>', 'train at this resolution (images are centre-cropped and resized)', num)
    .option('--channels <n>', '1 (grey) or 3 (RGB); default: as the data', num)
    .option('--max-images <n>', 'use a fixed seeded subset of at most n images', num)
    .option('--cond', 'class-conditional (labels from dataset.json or the built-in set)')
    .option('--xflip', 'add horizontally mirrored copies of the images')
    .addOption(new Option('--arch <name>', 'network: EDM presets ddpmpp, ncsnpp, adm, or small (CPU-sized DDPM++)').choices(ARCHS).default('ddpmpp'))
    .addOption(new Option('--precond <kind>', 'preconditioning and loss: pedm (Patch Diffusion), or EDM\'s whole-image edm, vp, ve').choices(['pedm', 'edm', 'vp', 've']))
    .option('--augment <p>', 'augmentation probability: EDM\'s AugmentPipe with train.py\'s transforms (flips, scale, rotation, anisotropy, translation), labels to the network (0 = off; official default 0.12)', num)
    .option('--cbase <n>', 'channel multiplier base (model_channels)', num)
    .option('--cres <list>', 'channels per resolution, e.g. 1,2,2,2', parseNumberList)
    .option('--num-blocks <n>', 'residual blocks per resolution', num)
    .option('--attn <list>', 'resolutions with self-attention, e.g. 16 (empty for none)', parseNumberList)
    .option('--dropout <p>', 'dropout probability', num)
    .option('--implicit-mlp', 'SongUNet: encode the coordinate channels with an implicit MLP before the first convolution (official --implicit_mlp)')
    .option('--label-dropout <p>', 'drop class labels with this probability (for classifier-free guidance)', num)
    .option('--duration <mimg>', 'training length in millions of patch samples (the official counter)', num)
    .option('--batch <n>', 'images per optimizer step (per full-size round)', num)
    .option('--batch-gpu <n>', 'images per micro-batch (gradient accumulation when smaller than --batch)', num)
    .option('--lr <rate>', 'learning rate', num)
    .option('--lr-rampup <kimg>', 'learning-rate warm-up length in kimg (official: 10000)', num)
    .option('--ema <mimg>', 'EMA half-life in Mimg', num)
    .option('--ema-rampup <ratio>', 'EMA half-life ramp-up ratio (official 0.05)', num)
    .option('--ls <factor>', 'loss scaling (official --ls; default 1): the loss and so the gradients are multiplied by it, never divided back; non-finite gradients become 0 / ±1e5 as in the official loop', num)
    .option('--latents', 'latent Patch Diffusion (official --train_on_latents): train on the Stable Diffusion VAE\'s latents of RGB images, patch sizes R/2 and R; needs --vae')
    .option('--vae <path>', 'the VAE for --latents: diffusers\' diffusion_pytorch_model.safetensors of stabilityai/sd-vae-ft-ema (or its folder, with config.json)')
    .option('--pre-encode', 'with --latents: encode the dataset once and keep each image\'s posterior (a fresh sample is still drawn every time), instead of encoding every batch')
    .option('--real-p <p>', 'probability of a full-size round (0.5 in the paper; 1 = plain EDM)', num)
    .option('--mask-pos', 'coordinate ablation: keep the coordinate inputs but feed zeros there, in training and in the run\'s sample grids (generate --mask-pos samples it)')
    .option('--max-minutes <m>', 'stop cleanly after m minutes of training in this process (state saved; --resume continues)', num)
    .option('--progressive', 'grow patch sizes over training instead of drawing them at random')
    .option('--same-patch-size', 'with several processes: all train the same patch size each round (faster: no rank waits for one that drew larger patches; the official code draws per rank)')
    .option('--tick <kimg>', 'status line and stats every this many kimg', num)
    .option('--snap <ticks>', 'network snapshot and sample grid every this many ticks', num)
    .option('--dump <ticks>', 'training state every this many ticks', num)
    .option('--seed <n>', 'random seed', num)
    .option('--threads <n>', 'CPU threads for libtorch (default: the cores other processes leave free, re-checked every 2 s; a fixed n makes reruns bit-exact)', num)
    .addOption(new Option('--precision <p>', 'fp32; bf16: convolutions and matrix products in bfloat16 (CPUs with AVX512-BF16/AMX, CUDA), the rest float32; fp16: the official --fp16, the network\'s image path in float16 (GPUs without bf16, e.g. V100, T4; with --ls, e.g. 100)').choices(PRECISIONS))
    .option('--tf32', 'allow TF32 in float32 convolutions and matrix products on CUDA (faster on Ampere and later, ~1e-3 relative error; off by default, as in the official loop)')
    .option('--channels-last', 'keep activations in channels-last (NHWC) memory order')
    .option('--device <name>', 'cpu, cuda, cuda:N or auto (default: auto)')
    .option('--grid-seeds <n>', 'images in each snapshot sample grid', num)
    .option('--grid-steps <n>', 'sampler steps for snapshot grids', num)
    .option('--metrics <list>', 'quality metrics on the EMA network at snapshots: fd-classifier,kid-classifier,swd (the classifier is the shipped Fashion-MNIST one)', (v: string) => v.split(',').filter(Boolean))
    .option('--metrics-every <n>', 'compute the metrics every n snapshots', num)
    .option('--metrics-samples <n>', 'generated images per metric evaluation (seeds 0..n−1)', num)
    .option('--resume <path>', `continue a run: its directory or a training-state file (options come from the state; ${RESUME_OVERRIDABLE.map(flagOf).join(', ')} may change, and --data when its folder moved; others are refused)`)
    .option('--transfer <snapshot>', 'start from a snapshot\'s EMA weights (ours, a run directory, or an official EDM / Patch Diffusion .pkl); the EMA ramp-up is off unless --ema-rampup is given (official --transfer)')
    .option('--dashboard [port]', 'serve the live training page (loss, img/s, memory, sample grids, metrics) on this port (default 6060 or the next free one; 0: any free port); rank 0 only', parsePort)
    .option('--dashboard-host <address>', 'address the dashboard listens on (default 127.0.0.1, this machine only; e.g. 0.0.0.0 to let other machines in)')
    .option('--dashboard-keep', 'when training finishes, keep serving the finished run\'s page until Ctrl-C')
    .option('--no-tensorboard', 'do not write TensorBoard event files (<run>/tensorboard/)')
    .option('--dry-run', 'print the resolved options and the network size, then exit')
    .action(async (flags: Record<string, unknown>, command: Command) => {
      const launched = await launchIfAsked(flags);
      if (launched !== null) {
        process.exitCode = launched;
        return;
      }
      const { nproc: _n, nnodes: _nn, nodeRank: _r, masterAddr: _a, masterPort: _p, ls, dashboard, dashboardHost, dashboardKeep, tensorboard, ...options } = flags;
      // Resuming, only the flags typed count: a default (--arch ddpmpp, --outdir runs) must not read as a change to the run.
      if (options.resume !== undefined) for (const key of Object.keys(options)) if (command.getOptionValueSource(key) === 'default') delete options[key];
      if ((dashboardHost !== undefined || dashboardKeep) && dashboard === undefined) throw new Error('--dashboard-host and --dashboard-keep go with --dashboard');
      // --ls is train.py's name for the loss scaling.
      const controller = new AbortController();
      const signals = abortOnSignals(controller);
      // The flags as given: train() checks them (a new run needs --data and --duration).
      const result = await train({
        ...options,
        log: 'stdout',
        progressBar: true,
        signal: controller.signal,
        ...(ls !== undefined ? { lossScaling: ls as number } : {}),
        tensorboard: tensorboard as boolean,
        ...(dashboard !== undefined
          ? { dashboard: { port: typeof dashboard === 'number' ? dashboard : undefined, host: dashboardHost as string | undefined, keep: dashboardKeep === true } }
          : {}),
      } as TrainRequest).finally(() => signals.release());
      if (result?.stoppedEarly && !result.timeLimitReached) process.exitCode = signalExitCode(signals.received ?? 'SIGINT');
    });
}
