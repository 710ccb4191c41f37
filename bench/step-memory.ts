// Peak memory of one training step on the CPU, and what dropout's mask costs
// in it: the step with dropout (its mask kept for backward in 1 byte per
// value), the same step without dropout (the floor), and, given an addon
// built from an earlier commit (--before), the step as that build runs it
// (a float mask: 4 bytes per value). Each variant runs in its own process,
// full-size rounds only (real_p 1: the step's largest), after one warm-up step.
//
//   node dist/bench/step-memory.js [--arch ddpmpp] [--resolution 32] [--channels 3] [--batch 16] [--dropout 0.13]
//        [--precision fp32] [--steps 2] [--threads N] [--before PATH/torch_addon.node] [--json FILE]
//
// Figures per variant: the peak of CPU tensor bytes in use during a step (the
// addon's allocator counts them: cpuCacheStats; n/a for a build without the
// counters), the process's peak RSS, and ms per step. The difference between
// the dropout and no-dropout steps is what the masks hold at the peak.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ArrayDataset } from '../src/data/dataset.js';
import { buildComponents } from '../src/train/components.js';
import { ARCHS, resolveTrainOptions, type Arch } from '../src/train/options.js';
import { PRECISIONS, type Precision } from '../src/nn/precision.js';
import { trainingStep } from '../src/train/step.js';
import { F, Generator, cpuCacheStats, describeEngine, scope, setNumThreads, type Tensor } from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import {
  benchMain, childConfig, formatMachine, formatTable, fx, machineInfo, nowIso, opt, parseOptions, peakRssMb, positiveInt, runAsChild, runChild,
  UsageError, writeJsonRecord, type OptionSpec,
} from './common.js';

const SCRIPT = fileURLToPath(import.meta.url);
const MiB = 2 ** 20;

interface ChildCfg {
  variant: string;
  arch: Arch;
  resolution: number;
  channels: 1 | 3;
  batch: number;
  dropout: number;
  precision: Precision;
  steps: number;
  threads: number;
}

interface ChildResult {
  engine: string;
  countersAvailable: boolean;
  parameters: number;
  /** Tensor bytes in use between steps (weights, Adam moments, EMA, gradients). */
  idleBytes: number | null;
  /** The highest tensor bytes in use during a measured step. */
  stepPeakBytes: number | null;
  peakRssMb: number;
  msPerStep: number;
  loss: number;
  /** Held bytes after dropout on a [batch, 128, R, R] tensor, per value: the fused op and the composite formula (this build only). */
  perValue: { fused: number; composite: number } | null;
}

/** Whether this process's addon counts CPU tensor bytes (a build from before the counters does not). */
function hasCounters(): boolean {
  return typeof (native as unknown as Record<string, unknown>).cpuResetPeakMemory === 'function' && typeof cpuCacheStats().allocatedBytes === 'number';
}

async function child(cfg: ChildCfg): Promise<ChildResult> {
  setNumThreads(cfg.threads);
  const counters = hasCounters();
  const options = resolveTrainOptions({
    data: 'synthetic-random-uint8', arch: cfg.arch, duration: 1000, batch: cfg.batch, realP: 1, dropout: cfg.dropout,
    seed: 0, threads: cfg.threads, device: 'cpu', precision: cfg.precision,
  });
  const pool = 4 * cfg.batch;
  const pixels = new Uint8Array(pool * cfg.channels * cfg.resolution * cfg.resolution);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  const dataset = new ArrayDataset({ name: 'random-uint8', resolution: cfg.resolution, channels: cfg.channels, pixels });
  const c = buildComponents(options, dataset, 'cpu');
  const totalNimg = Math.round(options.duration * 1e6);
  let curNimg = 0;
  let loss = NaN;
  const step = () => {
    const r = trainingStep({ options, components: c, curNimg, totalNimg, onRound: (x) => (loss = x.lossMean) });
    curNimg += Math.floor(r.imagesPerStep);
  };
  step(); // warm-up: Adam's moments and the caches exist from here on
  let idle: number | null = null;
  let peak: number | null = null;
  const t0 = performance.now();
  for (let k = 0; k < cfg.steps; k++) {
    if (counters) {
      native.cpuResetPeakMemory();
      idle = Math.max(idle ?? 0, cpuCacheStats().allocatedBytes);
    }
    step();
    if (counters) peak = Math.max(peak ?? 0, cpuCacheStats().peakAllocatedBytes);
  }
  const msPerStep = (performance.now() - t0) / cfg.steps;

  // The op alone, on one block-sized activation: the bytes that stay allocated while the output (and its graph) lives.
  let perValue: ChildResult['perValue'] = null;
  if (counters && typeof (native as unknown as Record<string, unknown>).dropoutMask === 'function') {
    perValue = scope(() => {
      const x = new Generator(1).randn([cfg.batch, 128, cfg.resolution, cfg.resolution]).requiresGrad_();
      const held = (f: () => Tensor): number => {
        const before = cpuCacheStats().allocatedBytes;
        const y = f();
        const bytes = cpuCacheStats().allocatedBytes - before;
        y.dispose();
        return bytes / x.numel;
      };
      const fused = held(() => F.dropout(x, 0.13, new Generator(2)));
      const composite = held(() => {
        const keep = F.dropoutMask(x, 0.13, new Generator(2), 'float32');
        const scaled = keep.div(1 - 0.13);
        keep.dispose();
        return x.mul(scaled);
      });
      return { fused, composite };
    });
  }
  return {
    engine: describeEngine(), countersAvailable: counters, parameters: c.net.parameterCount(), idleBytes: idle, stepPeakBytes: peak,
    peakRssMb: peakRssMb(), msPerStep, loss, perValue,
  };
}

const SPEC: Record<string, OptionSpec> = {
  arch: { type: 'string', default: 'ddpmpp', help: `network preset (${ARCHS.join(', ')})` },
  resolution: { type: 'int', default: 32, help: 'image resolution (every round full-size)' },
  channels: { type: 'int', default: 3, help: 'image channels' },
  batch: { type: 'int', default: 16, help: 'images per step' },
  dropout: { type: 'number', default: 0.13, help: 'dropout probability of the dropout variants (the official default 0.13)' },
  precision: { type: 'string', default: 'fp32', help: `training precision (${PRECISIONS.join(', ')})` },
  steps: { type: 'int', default: 2, help: 'measured steps per variant (after one warm-up step)' },
  threads: { type: 'int', default: availableParallelism(), help: 'libtorch threads' },
  before: { type: 'string', help: 'an addon built from an earlier commit (PD_ADDON for one more variant: the same step as that build runs it)' },
  json: { type: 'string', help: 'write the figures as JSON here' },
};

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/step-memory.js [options]\n\nPeak CPU memory of a training step, with dropout (1-byte mask), without, and as an earlier build runs it.');
  const arch = opt.str(o, 'arch');
  if (!(ARCHS as readonly string[]).includes(arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}`);
  const precision = opt.str(o, 'precision');
  if (!(PRECISIONS as readonly string[]).includes(precision)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}`);
  const channels = opt.num(o, 'channels');
  if (channels !== 1 && channels !== 3) throw new UsageError('--channels must be 1 or 3');
  const base = {
    arch: arch as Arch, resolution: positiveInt(opt.num(o, 'resolution'), '--resolution'), channels: channels as 1 | 3, batch: positiveInt(opt.num(o, 'batch'), '--batch'),
    precision: precision as Precision, steps: positiveInt(opt.num(o, 'steps'), '--steps'), threads: positiveInt(opt.num(o, 'threads'), '--threads'),
  };
  const p = opt.num(o, 'dropout');
  const before = opt.strOpt(o, 'before');
  const variants: { key: string; label: string; dropout: number; env?: NodeJS.ProcessEnv }[] = [
    { key: 'mask1', label: `dropout ${p}, 1-byte mask (this build)`, dropout: p },
    { key: 'none', label: 'no dropout (this build)', dropout: 0 },
    ...(before ? [{ key: 'before', label: `dropout ${p}, the --before build`, dropout: p, env: { ...process.env, PD_ADDON: before } }] : []),
  ];
  console.log('step-memory: peak CPU memory of a training step (full-size rounds), each variant in its own process');
  console.log(formatMachine(machineInfo()));
  console.log(`settings: ${arch} ${base.resolution}×${base.resolution}×${channels}, batch ${base.batch}, precision ${precision}, ${base.threads} threads, 1 warm-up + ${base.steps} measured steps` +
    `${before ? `; --before ${before}` : ''}\n`);
  const started = nowIso();
  const results: Record<string, ChildResult> = {};
  for (const v of variants) {
    console.log(`  ${v.label} …`);
    results[v.key] = await runChild<ChildResult>(SCRIPT, { ...base, variant: v.key, dropout: v.dropout } satisfies ChildCfg, { env: v.env });
  }
  console.log(`\nengine: ${results.mask1!.engine}; ${results.mask1!.parameters.toLocaleString('en-US')} parameters`);
  const mb = (b: number | null) => (b === null ? 'n/a' : fx(b / MiB, 1));
  console.log(formatTable(['variant', 'tensor bytes between steps (MiB)', 'step peak of tensor bytes (MiB)', 'peak RSS (MiB)', 'ms/step', 'loss'],
    variants.map((v) => {
      const r = results[v.key]!;
      return [v.label, mb(r.idleBytes), mb(r.stepPeakBytes), fx(r.peakRssMb, 0), fx(r.msPerStep, 0), fx(r.loss, 3)];
    })));
  const m = results.mask1!, n = results.none!, b = before ? results.before! : null;
  if (m.stepPeakBytes !== null && n.stepPeakBytes !== null) {
    const masks = m.stepPeakBytes - n.stepPeakBytes;
    console.log(`dropout's masks at the step's peak: ${mb(masks)} MiB (1 byte per value: ${(masks / 1e6).toFixed(1)} M values); ` +
      `a float mask holds 4 bytes per value, ${mb(4 * masks)} MiB, ${fx((3 * masks * 100) / (m.stepPeakBytes + 3 * masks), 1)}% of that step's peak`);
  }
  if (m.perValue) console.log(`the op alone (dropout on [${base.batch}, 128, ${base.resolution}, ${base.resolution}]): bytes held per value while the output lives: fused ${fx(m.perValue.fused, 3)} (output 4 + mask 1), composite x·(mask/(1−p)) ${fx(m.perValue.composite, 3)} (output 4 + float mask 4)`);
  if (b) console.log(`peak RSS: this build ${fx(m.peakRssMb, 0)} MiB against ${fx(b.peakRssMb, 0)} MiB for the --before build (${fx(b.peakRssMb - m.peakRssMb, 0)} MiB less); without dropout ${fx(n.peakRssMb, 0)} MiB`);
  writeJsonRecord(opt.strOpt(o, 'json'), { benchmark: 'step-memory', started, finished: nowIso(), machine: machineInfo(), settings: { ...base, dropout: p, before }, results });
}

const cfg = childConfig<ChildCfg>();
if (cfg) runAsChild(cfg, child);
else benchMain('step-memory', parent);
