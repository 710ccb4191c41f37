// `patch-diffusion generate`: sample images from a trained snapshot.
import { Command, Option } from 'commander';
import { PRECISIONS, type Precision } from '../../nn/precision.js';
import { generate, parseSeedList } from '../../generate/generate.js';
import { DISCRETIZATIONS, SCALINGS, SCHEDULES, SOLVERS, type Discretization, type Scaling, type Schedule, type Solver } from '../../diffusion/ablation-sampler.js';
import { MAX_BATCH, parseIntIn, parseNumber as num } from '../parse.js';
import { maxThreads } from '../../tensor/index.js';
import { addLaunchOptions, launchIfAsked } from '../launch-options.js';

export function generateCommand(): Command {
  return addLaunchOptions(new Command('generate'))
    .description('generate images from a network snapshot with the EDM Heun sampler (or generate.py\'s ablation sampler: --solver, --disc, --schedule, --scaling)')
    .requiredOption('--network <path>', 'a network-snapshot-*.safetensors, or a run directory (its newest snapshot)')
    .option('--outdir <dir>', 'where to write the PNGs', 'out')
    .option('--seeds <list>', 'seeds, e.g. 0-63 or 1,5,9-12: one image per seed', '0-63')
    .option('--batch <n>', 'images per sampler batch', parseIntIn(1, MAX_BATCH), 64)
    .option('--steps <n>', 'sampler steps (NFE = 2·steps − 1)', parseIntIn(1, 10_000), 18)
    .option('--sigma-min <s>', 'lowest noise level (default 0.002; the ablation sampler\'s depends on --disc; never below the network\'s own, e.g. 0.02 for VE)', num)
    .option('--sigma-max <s>', 'highest noise level (default 80; the ablation sampler\'s depends on --disc; never above the network\'s own)', num)
    .option('--rho <r>', 'time-step exponent', num)
    .option('--s-churn <x>', 'stochasticity (0 = deterministic)', num)
    .option('--s-min <x>', 'stochastic range: lowest σ', num)
    .option('--s-max <x>', 'stochastic range: highest σ', num)
    .option('--s-noise <x>', 'noise inflation of the churn', num)
    .addOption(new Option('--solver <s>', 'ablation sampler (generate.py): ODE solver').choices(SOLVERS))
    .addOption(new Option('--disc <d>', 'ablation sampler: time-step discretization').choices(DISCRETIZATIONS))
    .addOption(new Option('--schedule <s>', 'ablation sampler: noise schedule σ(t)').choices(SCHEDULES))
    .addOption(new Option('--scaling <s>', 'ablation sampler: signal scaling s(t)').choices(SCALINGS))
    .option('--class <n>', 'class index for a conditional network (default: random per seed)', parseIntIn(0, 1_000_000))
    .option('--cfg <w>', 'classifier-free guidance strength (1 = none)', num)
    .option('--image-size <n>', 'canvas side; larger than the training resolution extends the coordinate grid', parseIntIn(2, 4096))
    .option('--x-start <n>', 'column offset of the canvas in the training grid (may be negative)', num)
    .option('--y-start <n>', 'row offset of the canvas in the training grid (may be negative)', num)
    .option('--vae <path>', 'the Stable Diffusion VAE (diffusion_pytorch_model.safetensors or its folder) that decodes a latent network\'s samples; default: the one its run used')
    .option('--mask-pos', 'zeros in the coordinate channels (for a network trained with train --mask-pos this is the default)')
    .option('--subdirs', 'write seed s under NNNNNN/ folders of 1000')
    .option('--no-grid', 'do not write grid.png')
    .option('--device <name>', 'cpu, cuda, cuda:N or auto', 'auto')
    .option('--threads <n>', 'CPU threads for libtorch (default: the cores other processes leave free, re-checked every 2 s; a fixed n makes reruns bit-exact)', parseIntIn(1, maxThreads()))
    .addOption(new Option('--precision <p>', 'fp32; bf16: the network\'s convolutions and matrix products in bfloat16; fp16: its image path in float16, as the official --fp16 (GPUs without bf16); the sampler state stays float64').choices(PRECISIONS).default('fp32'))
    .option('--channels-last', 'keep activations in channels-last (NHWC) memory order')
    .action(async (f: Record<string, string | number | boolean | undefined>) => {
      const launched = await launchIfAsked(f);
      if (launched !== null) {
        process.exitCode = launched;
        return;
      }
      const summary = await generate({
        network: f.network as string,
        outdir: f.outdir as string,
        seeds: parseSeedList(String(f.seeds)),
        batch: f.batch as number,
        steps: f.steps as number,
        sigmaMin: f.sigmaMin as number | undefined,
        sigmaMax: f.sigmaMax as number | undefined,
        rho: f.rho as number | undefined,
        sChurn: f.sChurn as number | undefined,
        sMin: f.sMin as number | undefined,
        sMax: f.sMax as number | undefined,
        sNoise: f.sNoise as number | undefined,
        solver: f.solver as Solver | undefined,
        discretization: f.disc as Discretization | undefined,
        schedule: f.schedule as Schedule | undefined,
        scaling: f.scaling as Scaling | undefined,
        classIndex: (f.class as number | undefined) ?? null,
        cfg: (f.cfg as number | undefined) ?? null,
        imageSize: f.imageSize as number | undefined,
        xStart: f.xStart as number | undefined,
        yStart: f.yStart as number | undefined,
        subdirs: Boolean(f.subdirs),
        vae: f.vae as string | undefined,
        maskPos: f.maskPos === true ? true : undefined,
        grid: f.grid !== false,
        device: f.device as string,
        threads: f.threads as number | undefined,
        precision: f.precision as Precision,
        channelsLast: Boolean(f.channelsLast),
      });
      const rank = process.env.WORLD_SIZE && process.env.WORLD_SIZE !== '1' ? `rank ${process.env.RANK}: ` : '';
      console.log(`${rank}wrote ${summary.files.length} images to ${f.outdir}${summary.gridPath ? ` and ${summary.gridPath}` : ''} ` +
        `in ${summary.seconds.toFixed(1)} s (${summary.imagesPerSec.toFixed(2)} img/s)`);
    });
}
