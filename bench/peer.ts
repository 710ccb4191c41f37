// The official Patch Diffusion code and ours, side by side in one run: the
// training step (per patch size, and the real_p mix) and the EDM sampler, on
// the same architecture, batch, threads and device.
//
//   node dist/bench/peer.js --official DIR [--quick] [--python PATH] [--batch 32] [--threads N]
//        [--device cpu|cuda|auto] [--official-format both|nchw|channels-last] [--official-ddp]
//        [--official-compile] [--official-compile-modes default,reduce-overhead]
//        [--precision fp32|bf16|fp16] [--official-fp16] [--channels-last] [--rounds R] [--block K] [--warmup W]
//        [--sample-steps N] [--sample-batch B] [--sample-rounds R] [--no-training] [--no-sampling] [--json FILE]
//
// DIR is a checkout of Zhendong-Wang/Patch-Diffusion (e.g. from the git mirror:
//   mkdir -p /tmp/official && git --git-dir=/work/.mirror/Zhendong-Wang+Patch-Diffusion/repo archive HEAD | tar -x -C /tmp/official).
//
// Each side is a long-lived worker process, told over stdin/stdout (JSON
// lines) to run K steps and answering with the time it took, so both stay warm
// and the interleaving is real: the official side is bench/peer/official_step.py
// (our driver, importing the official modules from DIR) under --python, once
// per memory layout, and with --official-compile once more per torch.compile
// mode (the official network compiled, in the first layout: on a CUDA device
// both the default mode and "reduce-overhead", which captures CUDA graphs; on
// the CPU the default mode); our side is this script with --child, running
// src/train/step.ts's trainingStep (the function the training loop runs) on
// components from buildComponents. After warm-up, rounds of K-step blocks
// alternate the sides A B C / C B A so drift and background load hit all alike.
// The reference for every ratio is the fastest official variant (layout,
// eager or compiled) by the real_p mix.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ArrayDataset } from '../src/data/dataset.js';
import { generateImages, toUint8 } from '../src/diffusion/sampler.js';
import { PatchSchedule } from '../src/diffusion/patches.js';
import { buildComponents, networkConfigFor } from '../src/train/components.js';
import { ARCHS, resolveTrainOptions, type Arch, type ResolvedTrainOptions } from '../src/train/options.js';
import { PRECISIONS, type Precision } from '../src/nn/precision.js';
import { trainingStep } from '../src/train/step.js';
import {
  blasThreads, cpuCacheStats, cudaMemoryStats, describeEngine, getNumThreads, noGrad, resolveDevice, setNumThreads, synchronize, type Device,
} from '../src/tensor/index.js';
import { engineInfo } from '../src/tensor/runtime.js';
import {
  benchMain, ChildError, childConfig, formatMachine, formatTable, fx, LineWorker, machineInfo, median, nowIso, opt, parseOptions, peakRssMb,
  positiveInt, UsageError, writeJsonRecord, type OptionSpec,
} from './common.js';

const SCRIPT = fileURLToPath(import.meta.url); // dist/bench/peer.js
const ROOT = resolve(dirname(SCRIPT), '..', '..');
const DRIVER = join(ROOT, 'bench', 'peer', 'official_step.py');
const TAG = '@@PEER ';
const LETTERS = 'ABCDEFGHIJ';

// ---- what both sides are built from ------------------------------------------------------------

interface SetupCfg {
  arch: Arch;
  resolution: number;
  channels: 1 | 3;
  batch: number;
  batchGpu: number;
  realP: number;
  seed: number;
  threads: number;
  device: string;
  precision: Precision;
  channelsLast: boolean;
  /** Images in the random pool. */
  pool: number;
}

/**
 * The resolved training options our side runs with: what `train` would
 * resolve for `--arch small --batch B --precision P [--channels-last]`
 * (duration is irrelevant here: the schedule's total only matters in
 * progressive mode).
 */
function ourOptions(cfg: SetupCfg): ResolvedTrainOptions {
  return resolveTrainOptions({
    data: 'synthetic-random-uint8',
    arch: cfg.arch,
    duration: 1000,
    batch: cfg.batch,
    batchGpu: cfg.batchGpu,
    realP: cfg.realP,
    seed: cfg.seed,
    threads: cfg.threads,
    device: cfg.device,
    precision: cfg.precision,
    channelsLast: cfg.channelsLast,
  });
}

/** `count` random uint8 images (mulberry32 from the seed); the same shape on both sides, the pixels do not affect timing. */
function syntheticDataset(cfg: SetupCfg): ArrayDataset {
  const size = cfg.pool * cfg.channels * cfg.resolution * cfg.resolution;
  const pixels = new Uint8Array(size);
  let s = (cfg.seed + 0x9e3779b9) >>> 0;
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    pixels[i] = ((t ^ (t >>> 14)) >>> 0) & 255;
  }
  return new ArrayDataset({ name: 'random-uint8', resolution: cfg.resolution, channels: cfg.channels, pixels });
}

// ---- our worker (this script with --child) ----------------------------------------------------------

interface TrainRequest { cmd: 'train'; patch: number; batch_mul: number; steps: number }
interface SampleRequest { cmd: 'sample'; steps: number; batch: number; seed0?: number }
type Request = TrainRequest | SampleRequest | { cmd: 'stats' } | { cmd: 'quit' };

async function ourWorker(cfg: SetupCfg): Promise<void> {
  const reply = (o: Record<string, unknown>) => process.stdout.write(`${TAG}${JSON.stringify(o)}\n`);
  try {
    setNumThreads(cfg.threads);
    const device: Device = resolveDevice(cfg.device);
    const options = ourOptions(cfg);
    const dataset = syntheticDataset(cfg);
    const c = buildComponents(options, dataset, device);
    const totalNimg = Math.round(options.duration * 1e6);
    const sync = () => synchronize(device);
    let curNimg = 0;
    let lastLoss = NaN;
    const e = engineInfo();
    reply({
      ready: true,
      engine: describeEngine(e),
      libtorch: e.version,
      library: e.library,
      threads: getNumThreads(),
      blasThreads: blasThreads(),
      cpuCache: cpuCacheStats(),
      device,
      parameters: c.net.parameterCount(),
      networkConfig: c.networkConfig,
      precision: options.precision,
      channelsLast: options.channelsLast,
      node: process.version,
    });
    for await (const line of createInterface({ input: process.stdin })) {
      if (!line.trim()) continue;
      const msg = JSON.parse(line) as Request;
      if (msg.cmd === 'train') {
        const mul = c.patches.batchMul(msg.patch);
        if (mul !== msg.batch_mul) throw new Error(`patch ${msg.patch}: our batch_mul is ${mul}, the request says ${msg.batch_mul}`);
        sync();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        for (let k = 0; k < msg.steps; k++) {
          const r = trainingStep({ options, components: c, curNimg, totalNimg, patchSize: msg.patch, onRound: ({ lossMean }) => (lastLoss = lossMean) });
          curNimg += Math.floor(r.imagesPerStep);
        }
        sync();
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        reply({ ms, cpu_ms: (cpu.user + cpu.system) / 1000, loss: lastLoss });
      } else if (msg.cmd === 'sample') {
        const seed0 = msg.seed0 ?? 0;
        const seeds = Array.from({ length: msg.batch }, (_, k) => seed0 + k);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        // What src/generate/generate.ts does per batch: generateImages on the (EMA) network, then uint8.
        const out = noGrad(() => {
          const { images } = generateImages((x, s, pos, labels) => c.ema.forward(x, s, pos, labels ?? null), {
            seeds, channels: cfg.channels, resolution: cfg.resolution, numSteps: msg.steps, device,
          });
          try {
            return toUint8(images);
          } finally {
            images.dispose();
          }
        });
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(c0);
        let sum = 0;
        for (const v of out.data) sum += v;
        reply({ ms, cpu_ms: (cpu.user + cpu.system) / 1000, pixel_mean: sum / out.data.length });
      } else if (msg.cmd === 'stats') {
        const gpu = cudaMemoryStats(device);
        reply({ peak_rss_mb: peakRssMb(), cur_nimg: curNimg, cuda_peak_mb: gpu ? gpu.peakAllocated / 2 ** 20 : null });
      } else if (msg.cmd === 'quit') {
        reply({ bye: true });
        process.exit(0);
      } else {
        throw new Error(`unknown command ${JSON.stringify((msg as { cmd: unknown }).cmd)}`);
      }
    }
  } catch (e) {
    reply({ error: e instanceof Error ? (process.env.BENCH_DEBUG ? (e.stack ?? e.message) : e.message) : String(e) });
    process.exit(1);
  }
}

// ---- the parent --------------------------------------------------------------------------------------

interface Ready {
  ready: true;
  [k: string]: unknown;
}
interface BlockReply { ms: number; cpu_ms: number; loss?: number; pixel_mean?: number }
interface StatsReply { peak_rss_mb: number; cur_nimg: number; cuda_peak_mb: number | null }

interface Side {
  key: string;
  label: string;
  official: boolean;
  /** The official network under torch.compile: a worker that cannot compile is left out with a warning, not fatal. */
  compiled: boolean;
  worker: LineWorker;
  info?: Ready;
}

const SPEC: Record<string, OptionSpec> = {
  official: { type: 'string', help: 'checkout of Zhendong-Wang/Patch-Diffusion (required)' },
  python: { type: 'string', help: 'Python with PyTorch and numpy for the official side (default: the project\'s .venv/bin/python if present, else python3)' },
  quick: { type: 'boolean', default: false, help: 'a short run (about a minute): fewer rounds, 18 sampler steps, only the fastest official variant for sampling' },
  arch: { type: 'string', default: 'small', help: `network preset, as train --arch (${ARCHS.join(', ')})` },
  resolution: { type: 'int', default: 32, help: 'image resolution R (patch sizes R/4, R/2, R)' },
  channels: { type: 'int', default: 1, help: 'image channels (1 = Fashion-MNIST-like grey; the network gets 2 more for the coordinates)' },
  batch: { type: 'int', default: 32, help: 'batch size (images per step before batch_mul)' },
  batchGpu: { type: 'int', help: 'per-round batch (gradient accumulation when smaller than --batch); default --batch' },
  realP: { type: 'number', default: 0.5, help: 'probability of a full-size round: weights of the mix' },
  patchSizes: { type: 'ints', help: 'patch sizes to time (default: all of the schedule\'s)' },
  threads: { type: 'int', default: availableParallelism(), help: 'intra-op threads on both sides (torch.set_num_threads / setNumThreads)' },
  device: { type: 'string', default: 'cpu', help: 'cpu, cuda, cuda:N or auto (ours decides auto; the same device goes to both sides)' },
  officialFormat: { type: 'string', default: 'both', help: 'memory layout of the official network: nchw, channels-last, or both (two official workers)' },
  officialDdp: { type: 'boolean', default: false, help: 'wrap the official network in DDP (one rank, gloo/NCCL) as train.py does' },
  officialCompile: { type: 'boolean', default: false, help: 'also time the official network under torch.compile (one more official worker per mode, in the first --official-format layout; compiling takes minutes, in the warm-up)' },
  officialCompileModes: { type: 'string', help: 'torch.compile modes for --official-compile, comma-separated: default, reduce-overhead (default: both on CUDA, default on the CPU, where reduce-overhead captures nothing)' },
  officialFp16: { type: 'boolean', default: false, help: 'the official network with use_fp16 (its --fp16; CUDA only: fp16 activations in the UNet), to set against our --precision bf16' },
  precision: { type: 'string', default: 'fp32', help: `our training precision (${PRECISIONS.join(', ')}; sets the precision training option)` },
  channelsLast: { type: 'boolean', default: false, help: 'our network in channels-last layout (sets the channelsLast training option)' },
  rounds: { type: 'int', help: 'interleaved rounds per patch size (default 6; --quick 3)' },
  block: { type: 'int', help: 'steps per block (default 3; --quick 1)' },
  warmup: { type: 'int', help: 'warm-up steps per side and patch size (default 2; --quick 1)' },
  training: { type: 'boolean', default: true, help: 'time the training step (--no-training skips it)' },
  sampling: { type: 'boolean', default: true, help: 'time the sampler (--no-sampling skips it)' },
  sampleSteps: { type: 'int', help: 'sampler steps, NFE = 2·steps − 1 (default 32; --quick 18)' },
  sampleBatch: { type: 'int', default: 64, help: 'images per sampler batch' },
  sampleRounds: { type: 'int', help: 'timed sampler batches per side (default 2; --quick 1)' },
  seed: { type: 'int', default: 0, help: 'seed of both sides\' initial weights and data' },
  json: { type: 'string', help: 'write every figure as JSON here' },
};

const USAGE = `node dist/bench/peer.js --official DIR [options]

The official Patch Diffusion training step and edm_sampler (Python, PyTorch) against ours (TypeScript on libtorch), interleaved in one run.`;

function defaultPython(): string {
  const venv = join(ROOT, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

function checkOfficial(dir: string): string {
  const abs = resolve(dir);
  const hint = 'check it out with: mkdir -p /tmp/official && git --git-dir=/work/.mirror/Zhendong-Wang+Patch-Diffusion/repo archive HEAD | tar -x -C /tmp/official ' +
    '(or git clone https://github.com/Zhendong-Wang/Patch-Diffusion)';
  if (!existsSync(abs)) throw new UsageError(`--official ${dir}: no such directory; ${hint}`);
  const missing = ['training/networks.py', 'training/patch_loss.py', 'training/training_loop.py', 'generate.py', 'torch_utils/misc.py'].filter((f) => !existsSync(join(abs, f)));
  if (missing.length) throw new UsageError(`--official ${dir} is not a Patch Diffusion checkout (missing ${missing.join(', ')}); ${hint}`);
  return abs;
}

const stats = (xs: readonly number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const range = (s: { median: number; min: number; max: number }, d = 1) => `${fx(s.median, d)} [${fx(s.min, d)}–${fx(s.max, d)}]`;

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, USAGE);
  const quick = opt.bool(o, 'quick');
  const officialArg = opt.strOpt(o, 'official');
  if (!officialArg) throw new UsageError('--official DIR is required (a checkout of Zhendong-Wang/Patch-Diffusion)');
  const official = checkOfficial(officialArg);
  const python = opt.strOpt(o, 'python') ?? defaultPython();
  const arch = opt.str(o, 'arch');
  if (!(ARCHS as readonly string[]).includes(arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}, got '${arch}'`);
  const channels = opt.num(o, 'channels');
  if (channels !== 1 && channels !== 3) throw new UsageError(`--channels must be 1 or 3, got ${channels}`);
  const precision = opt.str(o, 'precision');
  if (!(PRECISIONS as readonly string[]).includes(precision)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  const format = opt.str(o, 'officialFormat');
  const compileModes = opt.bool(o, 'officialCompile') ? (opt.strOpt(o, 'officialCompileModes') ?? '').split(',').filter(Boolean) : [];
  if (!opt.bool(o, 'officialCompile') && opt.strOpt(o, 'officialCompileModes') !== undefined) throw new UsageError('--official-compile-modes goes with --official-compile');
  for (const m of compileModes) if (m !== 'default' && m !== 'reduce-overhead') throw new UsageError(`--official-compile-modes: '${m}' is not a torch.compile mode here (default, reduce-overhead)`);
  if (!['both', 'nchw', 'channels-last'].includes(format)) throw new UsageError(`--official-format must be both, nchw or channels-last, got '${format}'`);
  const batch = positiveInt(opt.num(o, 'batch'), '--batch');
  const batchGpu = positiveInt(opt.numOpt(o, 'batchGpu') ?? batch, '--batch-gpu');
  if (batch % batchGpu !== 0) throw new UsageError(`--batch-gpu ${batchGpu} must divide --batch ${batch}`);
  const threads = positiveInt(opt.num(o, 'threads'), '--threads');
  const rounds = positiveInt(opt.numOpt(o, 'rounds') ?? (quick ? 3 : 6), '--rounds');
  const block = positiveInt(opt.numOpt(o, 'block') ?? (quick ? 1 : 3), '--block');
  const warmup = opt.numOpt(o, 'warmup') ?? (quick ? 1 : 2);
  if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError(`--warmup must be a whole number ≥ 0, got ${warmup}`);
  const sampleSteps = positiveInt(opt.numOpt(o, 'sampleSteps') ?? (quick ? 18 : 32), '--sample-steps');
  const sampleBatch = positiveInt(opt.num(o, 'sampleBatch'), '--sample-batch');
  const sampleRounds = positiveInt(opt.numOpt(o, 'sampleRounds') ?? (quick ? 1 : 2), '--sample-rounds');
  const doTraining = opt.bool(o, 'training');
  const doSampling = opt.bool(o, 'sampling');
  if (!doTraining && !doSampling) throw new UsageError('--no-training and --no-sampling leave nothing to measure');
  setNumThreads(threads);
  let device: Device;
  try {
    device = resolveDevice(opt.str(o, 'device'));
  } catch (e) {
    throw new UsageError(`--device: ${e instanceof Error ? e.message : String(e)}`);
  }

  const cfg: SetupCfg = {
    arch: arch as Arch, resolution: positiveInt(opt.num(o, 'resolution'), '--resolution'), channels, batch, batchGpu, realP: opt.num(o, 'realP'),
    seed: opt.num(o, 'seed'), threads, device, precision: precision as Precision, channelsLast: opt.bool(o, 'channelsLast'), pool: 4096,
  };
  // The same resolution of options, network config and schedule that our worker makes (it checks the config matches).
  let options: ResolvedTrainOptions;
  try {
    options = ourOptions(cfg);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const R = cfg.resolution;
  const networkConfig = networkConfigFor(options, { name: 'random-uint8', resolution: R, channels, labelDim: 0 } as ArrayDataset);
  const schedule = new PatchSchedule({ resolution: R, realP: options.realP });
  const sizes = (opt.list(o, 'patchSizes') as number[] | undefined) ?? [...schedule.patchSizes];
  for (const s of sizes) if (!schedule.patchSizes.includes(s)) throw new UsageError(`--patch-sizes: ${s} is not in the schedule (${schedule.patchSizes.join(', ')})`);
  const prob = (s: number) => schedule.probabilities[schedule.patchSizes.indexOf(s)]!;
  const mixComplete = schedule.patchSizes.every((s) => prob(s) === 0 || sizes.includes(s));

  // ---- workers ----
  const baseOfficial = {
    official, threads, device, seed: cfg.seed, network: opt.bool(o, 'officialFp16') ? { ...networkConfig, use_fp16: true } : networkConfig,
    batch, batch_gpu: batchGpu, batch_mul_avg: schedule.batchMulAvg, pool: cfg.pool,
    ddp: opt.bool(o, 'officialDdp'),
    optim: { lr: options.lr, lr_rampup_kimg: options.lrRampup, ema_halflife_kimg: options.ema * 1000, ema_rampup_ratio: options.emaRampup },
  };
  const pyHint = `pass --python PATH to a Python with PyTorch and numpy, e.g. python3 -m venv ${join(ROOT, '.venv')} && ${join(ROOT, '.venv', 'bin', 'pip')} install torch numpy`;
  const pyEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  const layouts = format === 'both' ? ['nchw', 'channels-last'] : [format];
  if (opt.bool(o, 'officialCompile') && !compileModes.length) compileModes.push(...(device === 'cpu' ? ['default'] : ['default', 'reduce-overhead']));
  // The eager official network per layout, then one compiled worker per torch.compile mode, on the first layout only
  // (NCHW with --official-format both): inductor chooses the convolutions' memory layout itself (its layout optimisation).
  const variants = [...layouts.map((layout) => ({ layout, mode: null as string | null })), ...compileModes.map((mode) => ({ layout: layouts[0]!, mode }))];
  const sides: Side[] = variants.map(({ layout, mode }) => ({
    key: `official-${layout}${mode ? `-compiled${mode === 'default' ? '' : `-${mode}`}` : ''}`,
    label: `official ${layout === 'nchw' ? 'NCHW' : 'channels-last'}${mode ? ` compiled${mode === 'default' ? '' : ` ${mode}`}` : ''}`,
    official: true,
    compiled: mode !== null,
    worker: new LineWorker(`official (${layout}${mode ? `, compile ${mode}` : ''})`, python,
      [DRIVER, JSON.stringify({ ...baseOfficial, channels_last: layout === 'channels-last', compile: mode })], { tag: TAG, env: pyEnv, missingHint: pyHint }),
  }));
  sides.push({ key: 'ours', label: 'ours', official: false, compiled: false, worker: new LineWorker('ours', process.execPath, [SCRIPT, '--child', JSON.stringify(cfg)], { tag: TAG }) });
  const killAll = () => sides.forEach((s) => s.worker.kill());
  process.once('SIGINT', () => {
    killAll();
    process.exit(130);
  });

  try {
    const started = nowIso();
    const t0 = performance.now();
    const readies = await Promise.allSettled(sides.map((s) => s.worker.ready<Ready>()));
    const failed = readies.map((r, k) => (r.status === 'rejected' && !sides[k]!.compiled ? (r.reason as Error).message : null)).filter(Boolean);
    if (failed.length) throw new ChildError(`a worker did not start:\n${failed.join('\n')}`);
    // A compiled official worker that cannot run (no Triton on a GPU, no C++ compiler for inductor) is left out: the eager ones still compare.
    const dropped: string[] = [];
    let offs: Side[] = [];
    const dropSide = (side: Side, why: unknown) => {
      const message = why instanceof Error ? why.message : String(why);
      console.log(`WARNING: ${side.label} left out: ${message.split('\n').slice(0, 6).join(' | ')}`);
      dropped.push(`${side.label}: ${message}`);
      side.worker.kill();
      sides.splice(sides.indexOf(side), 1);
      offs = sides.filter((x) => x.official);
    };
    const notStarted: [Side, unknown][] = [];
    readies.forEach((r, k) => (r.status === 'fulfilled' ? (sides[k]!.info = r.value) : notStarted.push([sides[k]!, r.reason])));
    for (const [side, why] of notStarted) dropSide(side, why);
    const ours = sides.find((s) => !s.official)!;
    offs = sides.filter((s) => s.official);
    const oi = ours.info!, pi = offs[0]!.info!;
    if (JSON.stringify(oi.networkConfig) !== JSON.stringify(networkConfig)) throw new Error('our worker built a different network config than the parent resolved');

    // ---- header ----
    const machine = machineInfo();
    const tc = pi.torch_config as Record<string, unknown>;
    console.log('peer: the official Patch Diffusion code vs ours, interleaved in one run');
    console.log(formatMachine(machine));
    console.log(`ours:     ${String(oi.engine)}; Node ${String(oi.node)}; ${String(oi.threads)} threads; device ${String(oi.device)}; ` +
      `CPU tensor cache ${(oi.cpuCache as { enabled: boolean }).enabled ? 'on' : 'off'}; precision ${String(oi.precision)}; channels-last ${String(oi.channelsLast)}`);
    console.log(`official: ${String(pi.python)} (${String(pi.executable)}), torch ${String(pi.torch)}, numpy ${String(pi.numpy)}; ${String(tc.threads)} threads ` +
      `(${String(tc.interop_threads)} inter-op); device ${String(tc.device)}${tc.device_name ? ` (${String(tc.device_name)})` : ''}; mkldnn ${String(tc.mkldnn)}, mkl ${String(tc.mkl)}, openmp ${String(tc.openmp)}` +
      `${pi.ddp ? '; DDP wrapper (1 rank)' : '; no DDP wrapper'}; code from ${official}`);
    if ((pi.stubbed as string[]).length)
      console.log(`          (not installed, stubbed because the official modules import them at the top but the timed path never calls them: ${(pi.stubbed as string[]).join(', ')}; ` +
        `generate.py itself is not imported, only edm_sampler/sample_with_cfg/StackedRandomGenerator are compiled from it, so click, tqdm, Pillow and diffusers are not needed)`);
    if (compileModes.length)
      console.log(`          compiled official workers: torch.compile(net, mode=${compileModes.map((m) => (m === 'default' ? 'None' : `"${m}"`)).join(' / ')}, dynamic=False) on the training network and the sampler's EMA copy; ` +
        `compilation happens in the warm-up (one graph per patch size)${device === 'cpu' && compileModes.includes('reduce-overhead') ? '; reduce-overhead captures no CUDA graphs on the CPU' : ''}`);
    if (opt.bool(o, 'officialFp16')) console.log(`          the official network runs with use_fp16 (its --fp16)${device === 'cpu' ? ', which it applies on CUDA only: fp32 here' : ''}`);
    else if (precision === 'bf16') console.log('          the official side stays fp32 (it has no bf16 mode; its use_fp16 applies to CUDA only: --official-fp16)');
    else if (precision === 'fp16') console.log('          the official side stays fp32: its fp16 is use_fp16 (--official-fp16), on CUDA only');
    const nc = networkConfig as unknown as Record<string, unknown>;
    console.log(`network:  ${arch} = Patch_EDMPrecond(${Object.entries(nc).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}); ` +
      `parameters: official ${Number(pi.parameters).toLocaleString('en-US')}, ours ${Number(oi.parameters).toLocaleString('en-US')}` +
      (pi.parameters === oi.parameters ? ' (equal)' : ' (DIFFERENT!)'));
    console.log(`data:     random uint8 images ${channels}×${R}×${R} mapped to [−1, 1] by x/127.5 − 1 (the same shape on both sides; the values do not affect the timing), ` +
      `a pool of ${cfg.pool} served batch_gpu at a time; each side draws its own weights, crops, σ and noise`);
    console.log(`workers started in ${fx((performance.now() - t0) / 1000, 1)} s; load average ${machine.loadAverage.join(' / ')}\n`);

    const record: Record<string, unknown> = {
      benchmark: 'peer', started, machine,
      settings: { ...cfg, official, python, quick, rounds, block, warmup, sizes, officialFormat: format, officialDdp: baseOfficial.ddp, officialCompile: compileModes, sampleSteps, sampleBatch, sampleRounds, command: process.argv.slice(2).join(' ') },
      workers: Object.fromEntries(sides.map((s) => [s.key, s.info])),
      leftOut: dropped,
    };

    // ---- training ----
    let bestOfficial: Side | null = offs.length === 1 ? offs[0]! : null;
    if (doTraining) {
      const rows = sizes.map((s) => ({ s, mul: schedule.batchMul(s), p: prob(s) }));
      console.log(`training step, fixed patch size per step: batch ${batch}${batchGpu !== batch ? ` in rounds of ${batchGpu}` : ''}, each round batch_gpu·batch_mul images cropped to s×s ` +
        `(batch_mul = R/s: ${rows.map((r) => `${r.s}→${r.mul}`).join(', ')}); ${warmup} warm-up step(s) per side and size, then ${rounds} rounds of ${block}-step blocks, ` +
        `side order ${sides.map((_, k) => LETTERS[k]).join('')} / ${sides.map((_, k) => LETTERS[k]).reverse().join('')} alternating (${sides.map((s, k) => `${LETTERS[k]} = ${s.label}`).join(', ')})`);
      const order = (r: number) => (r % 2 === 0 ? sides : [...sides].reverse());
      const t = performance.now();
      if (warmup > 0) {
        for (const row of rows) {
          for (const side of [...sides]) {
            try {
              await side.worker.request<BlockReply>({ cmd: 'train', patch: row.s, batch_mul: row.mul, steps: warmup });
            } catch (e) {
              if (!side.compiled) throw e;
              dropSide(side, e);
            }
          }
        }
        if (bestOfficial && !sides.includes(bestOfficial)) bestOfficial = null;
        if (offs.length === 1) bestOfficial = offs[0]!;
      }
      console.log(`  warm-up done in ${fx((performance.now() - t) / 1000, 1)} s`);
      const wall: Record<string, Record<number, number[]>> = {};
      const cpu: Record<string, Record<number, number[]>> = {};
      const loss: Record<string, Record<number, number>> = {};
      for (const side of sides) {
        wall[side.key] = Object.fromEntries(sizes.map((s) => [s, [] as number[]]));
        cpu[side.key] = Object.fromEntries(sizes.map((s) => [s, [] as number[]]));
        loss[side.key] = {};
      }
      for (let r = 0; r < rounds; r++) {
        const parts: string[] = [];
        for (const row of rows) {
          for (const side of order(r)) {
            const res = await side.worker.request<BlockReply>({ cmd: 'train', patch: row.s, batch_mul: row.mul, steps: block });
            wall[side.key]![row.s]!.push(res.ms / block);
            cpu[side.key]![row.s]!.push(res.cpu_ms / block);
            loss[side.key]![row.s] = res.loss!;
          }
          parts.push(`${row.s}×${row.s} ${sides.map((side) => fx(wall[side.key]![row.s]!.at(-1)!, 0)).join('/')}`);
        }
        console.log(`  round ${r + 1}/${rounds} (ms/step ${sides.map((s) => s.label).join('/')}): ${parts.join('  ')}`);
      }
      const trainSec = (performance.now() - t) / 1000;

      // Per-round mix Σ p_s·t_s, and its medians.
      const mixPerRound = (key: string) => Array.from({ length: rounds }, (_, r) => sizes.reduce((sum, s) => sum + prob(s) * wall[key]![s]![r]!, 0));
      const mixOfMedians = (key: string) => sizes.reduce((sum, s) => sum + prob(s) * median(wall[key]![s]!), 0);
      if (offs.length > 1) {
        // The fastest official variant (layout, eager or compiled): by the mix when it is complete, else by the sum of medians.
        const score = (side: Side) => (mixComplete ? mixOfMedians(side.key) : sizes.reduce((sum, s) => sum + median(wall[side.key]![s]!), 0));
        bestOfficial = offs.reduce((a, b) => (score(b) < score(a) ? b : a));
      }
      const ratioCols = offs.map((side) => `${side.label} / ours`);
      const table = rows.map((row) => {
        const med = (key: string) => median(wall[key]![row.s]!);
        return [
          `${row.s}×${row.s}`, String(row.mul), String(batchGpu * row.mul), fx(row.p, 2),
          ...sides.map((side) => range(stats(wall[side.key]![row.s]!))),
          ...offs.map((side) => `${fx(med(side.key) / med('ours'), 2)}×`),
        ];
      });
      if (mixComplete) {
        table.push([
          `mix p=${options.realP}`, fx(schedule.batchMulAvg, 2), '', '1',
          ...sides.map((side) => {
            const per = stats(mixPerRound(side.key));
            return `${fx(mixOfMedians(side.key), 1)} [${fx(per.min, 1)}–${fx(per.max, 1)}]`;
          }),
          ...offs.map((side) => `${fx(mixOfMedians(side.key) / mixOfMedians('ours'), 2)}×`),
        ]);
      }
      console.log(`\ntraining: ms per optimizer step, median [min–max] over ${rounds} blocks of ${block} steps (${fx(trainSec, 0)} s):`);
      console.log(formatTable(['patch', 'batch_mul', 'images/round', 'p', ...sides.map((s) => s.label), ...ratioCols], table));
      if (mixComplete) {
        console.log(`mix: the probability-weighted mean step time t_mix = Σ_s p_s·t_s with p = ${schedule.patchSizes.map((s) => `${fx(prob(s), 2)} (${s}×${s})`).join(', ')} ` +
          `(real_p ${options.realP}), t_s the per-size medians above; [min–max] of the mix row are those of the per-round mixes; ` +
          `batch_mul_avg ${fx(schedule.batchMulAvg, 2)} → ${fx(batch * schedule.batchMulAvg, 1)} counted images per step`);
        for (const side of sides) {
          const m = mixOfMedians(side.key);
          console.log(`  ${side.label.padEnd(22)} t_mix ${fx(m, 1)} ms → ${fx((batch * schedule.batchMulAvg * 1000) / m, 1)} counted images/s`);
        }
      }
      const pairwise = (side: Side) => median(Array.from({ length: rounds }, (_, r) => mixComplete ? mixPerRound(side.key)[r]! / mixPerRound('ours')[r]! : NaN));
      if (offs.length > 1) {
        const what = mixComplete ? 't_mix' : 'sum of per-size medians';
        const val = (s: Side) => (mixComplete ? mixOfMedians(s.key) : sizes.reduce((sum, z) => sum + median(wall[s.key]![z]!), 0));
        const faster = bestOfficial!;
        const others = offs.filter((s) => s !== faster).sort((a, b) => val(a) - val(b));
        console.log(`fastest official variant (the reference): ${faster.label} (${what} ${fx(val(faster), 1)} ms; ` +
          `${others.map((s) => `${s.label} ${fx(val(s), 1)} ms, ${fx(val(s) / val(faster), 2)}×`).join('; ')})`);
      }
      if (bestOfficial && mixComplete) {
        const ratio = mixOfMedians(bestOfficial.key) / mixOfMedians('ours');
        console.log(`RESULT training (mix p=${options.realP}): official (${bestOfficial.label}) ${fx(mixOfMedians(bestOfficial.key), 1)} ms/step vs ours ${fx(mixOfMedians('ours'), 1)} ms/step: ` +
          `official/ours = ${fx(ratio, 3)} (median of per-round ratios ${fx(pairwise(bestOfficial), 3)}), i.e. ours is ${ratio >= 1 ? `${fx(ratio, 2)}× as fast` : `${fx(1 / ratio, 2)}× slower`}`);
      }
      console.log(`CPU time per step (median, ms; CPU/wall shows how many of the ${threads} threads were busy): ` +
        sides.map((side) => `${side.label} ${sizes.map((s) => `${s}: ${fx(median(cpu[side.key]![s]!), 0)} (${fx(median(cpu[side.key]![s]!) / median(wall[side.key]![s]!), 2)}×)`).join(', ')}`).join('; '));
      if (device === 'cpu' && threads > 1) {
        // Busy threads per wall second well under the thread count: the machine was shared. OpenMP's
        // spinning barriers then stretch every parallel region, and the times say little about either side.
        const busy = sides.map((side) => ({ side, r: median(sizes.map((s) => median(cpu[side.key]![s]!) / median(wall[side.key]![s]!))) }));
        const low = busy.filter((b) => b.r < 0.75 * threads);
        if (low.length)
          console.log(`WARNING: ${low.map((b) => `${b.side.label} kept ${fx(b.r, 2)} of ${threads} threads busy`).join(', ')}: other processes were using the CPUs ` +
            `(load average now ${machineInfo().loadAverage.join(' / ')}), so these times are inflated and noisy; rerun on an idle machine or with --threads 1`);
      }
      console.log(`last round's mean loss (sanity: both near 1 for random data): ${sides.map((side) => `${side.label} ${sizes.map((s) => fx(loss[side.key]![s], 3)).join('/')}`).join('; ')}`);
      record.training = {
        sizes: rows, msPerStep: wall, cpuMsPerStep: cpu, lastLoss: loss, seconds: trainSec,
        summary: Object.fromEntries(sides.map((side) => [side.key, {
          perSize: Object.fromEntries(sizes.map((s) => [s, stats(wall[side.key]![s]!)])),
          mix: mixComplete ? { ofMedians: mixOfMedians(side.key), perRound: mixPerRound(side.key), countedImagesPerSec: (batch * schedule.batchMulAvg * 1000) / mixOfMedians(side.key) } : null,
        }])),
        ratios: Object.fromEntries(offs.map((side) => [side.key, {
          perSize: Object.fromEntries(sizes.map((s) => [s, median(wall[side.key]![s]!) / median(wall.ours![s]!)])),
          mix: mixComplete ? mixOfMedians(side.key) / mixOfMedians('ours') : null,
          mixPairwiseMedian: mixComplete ? pairwise(side) : null,
        }])),
        fasterOfficial: bestOfficial?.key ?? null,
        mixFormula: 't_mix = sum_s p_s * t_s (p from the real_p schedule; t_s = median ms/step at fixed patch size s)',
      };
      console.log('');
    }

    // ---- sampling ----
    if (doSampling) {
      // --quick samples with the fastest official variant only; a full run with all.
      const sampSides = quick && bestOfficial ? [bestOfficial, ours] : sides;
      const nfe = 2 * sampleSteps - 1;
      console.log(`sampling: edm_sampler (generate.py) vs our generateImages (src/generate's path), deterministic Heun, ${sampleSteps} steps (NFE ${nfe}), batch ${sampleBatch}, ` +
        `${R}×${R} full canvas with the full coordinate grid, from each side's EMA network (untrained weights: the cost does not depend on them), ` +
        `including latents from per-seed generators and the conversion to uint8; warm-up: one 2-step batch per side, then ${sampleRounds} timed batch(es) per side, order alternating`);
      const t = performance.now();
      for (const side of sampSides) await side.worker.request<BlockReply>({ cmd: 'sample', steps: 2, batch: sampleBatch, seed0: 1_000_000 });
      const sec: Record<string, number[]> = Object.fromEntries(sampSides.map((s) => [s.key, [] as number[]]));
      const cpuSec: Record<string, number[]> = Object.fromEntries(sampSides.map((s) => [s.key, [] as number[]]));
      const means: Record<string, number> = {};
      for (let r = 0; r < sampleRounds; r++) {
        for (const side of r % 2 === 0 ? sampSides : [...sampSides].reverse()) {
          const res = await side.worker.request<BlockReply>({ cmd: 'sample', steps: sampleSteps, batch: sampleBatch, seed0: r * sampleBatch });
          sec[side.key]!.push(res.ms / 1000);
          cpuSec[side.key]!.push(res.cpu_ms / 1000);
          means[side.key] = res.pixel_mean!;
        }
        console.log(`  batch ${r + 1}/${sampleRounds}: ${sampSides.map((s) => `${s.label} ${fx(sec[s.key]!.at(-1)!, 2)} s`).join(', ')}`);
      }
      const ips = (key: string) => sampleBatch / median(sec[key]!);
      console.log(`\nsampling: images/s (median over ${sampleRounds} batch(es); ${fx((performance.now() - t) / 1000, 0)} s):`);
      console.log(formatTable(['side', 's/batch median [min–max]', 'images/s', 'ms per NFE', 'speed-up of ours (official time / ours)'],
        sampSides.map((side) => [side.label, range(stats(sec[side.key]!), 2), fx(ips(side.key), 2), fx((median(sec[side.key]!) * 1000) / nfe, 1),
          side.official ? `${fx(median(sec[side.key]!) / median(sec.ours!), 3)}×` : ''])));
      const bestSampler = sampSides.filter((s) => s.official).reduce((a, b) => (ips(b.key) > ips(a.key) ? b : a));
      console.log(`RESULT sampling: official (${bestSampler.label}) ${fx(ips(bestSampler.key), 2)} images/s vs ours ${fx(ips('ours'), 2)} images/s: ` +
        `ours/official = ${fx(ips('ours') / ips(bestSampler.key), 3)}`);
      if (sampleRounds > 1) {
        const best = (key: string) => sampleBatch / Math.min(...sec[key]!);
        console.log(`  best batch per side (less exposed to background load): ${sampSides.map((s) => `${s.label} ${fx(best(s.key), 2)} images/s`).join(', ')}; ` +
          `ours/official ${sampSides.filter((s) => s.official).map((s) => `${fx(best('ours') / best(s.key), 3)} (${s.label})`).join(', ')}`);
      }
      if (device === 'cpu' && threads > 1) {
        const low = sampSides.flatMap((side) => sec[side.key]!.map((w, k) => ({ side, k, r: cpuSec[side.key]![k]! / w }))).filter((b) => b.r < 0.75 * threads);
        if (low.length)
          console.log(`WARNING: ${low.map((b) => `${b.side.label} batch ${b.k + 1} kept ${fx(b.r, 2)} of ${threads} threads busy`).join(', ')}: other processes were using the CPUs ` +
            `(load average now ${machineInfo().loadAverage.join(' / ')}), so those batches are inflated; rerun on an idle machine, with --threads 1, or compare the best batches`);
      }
      console.log(`uint8 pixel means (sanity, random networks): ${sampSides.map((s) => `${s.label} ${fx(means[s.key], 1)}`).join(', ')}`);
      record.sampling = {
        steps: sampleSteps, nfe, batch: sampleBatch, secPerBatch: sec, cpuSecPerBatch: cpuSec, pixelMean: means,
        imagesPerSec: Object.fromEntries(sampSides.map((s) => [s.key, ips(s.key)])),
        ratioOursOverOfficial: Object.fromEntries(sampSides.filter((s) => s.official).map((s) => [s.key, ips('ours') / ips(s.key)])),
        fasterOfficial: bestSampler.key,
      };
      console.log('');
    }

    const peak = await Promise.all(sides.map((s) => s.worker.request<StatsReply>({ cmd: 'stats' })));
    console.log(`peak RSS per worker: ${sides.map((s, k) => `${s.label} ${fx(peak[k]!.peak_rss_mb, 0)} MiB`).join(', ')}; ` +
      `total ${fx((performance.now() - t0) / 1000, 0)} s; load average at the end ${machineInfo().loadAverage.join(' / ')}`);
    if (peak.some((p) => p.cuda_peak_mb !== null))
      console.log(`peak GPU memory allocated per worker (caching allocator): ${sides.map((s, k) => `${s.label} ${peak[k]!.cuda_peak_mb === null ? 'n/a' : `${fx(peak[k]!.cuda_peak_mb, 0)} MiB`}`).join(', ')}`);
    console.log(`notes: the official step is training_loop.py's loop body as bench/peer/official_step.py runs it (zero_grad(set_to_none), per round the loss, ` +
      `training_stats.report, loss.sum()·(loss_scaling / batch_gpu_total / batch_mul) backward, lr ramp, nan_to_num, Adam, EMA copy_(lerp)); ours is src/train/step.ts's ` +
      `trainingStep. batch_mul is R/s on both sides: the official table {512:1, 256:2, 128:4, 64:16, 32:32, 16:64} has no entry for 8, so training_loop.py itself ` +
      `raises KeyError at R = 32 when it draws s = 8. Neither side's data loading runs in a separate worker here (the official DataLoader would, with --workers 1).`);
    record.peakRssMb = Object.fromEntries(sides.map((s, k) => [s.key, peak[k]!.peak_rss_mb]));
    record.peakGpuMb = Object.fromEntries(sides.map((s, k) => [s.key, peak[k]!.cuda_peak_mb]));
    record.finished = nowIso();
    writeJsonRecord(opt.strOpt(o, 'json'), record);
    await Promise.all(sides.map((s) => s.worker.close()));
  } catch (e) {
    killAll();
    throw e;
  }
}

const childCfg = childConfig<SetupCfg>();
if (childCfg) void ourWorker(childCfg);
else benchMain('peer', parent);
