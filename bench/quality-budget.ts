// The data-efficiency claim in miniature: on the fixed 5,000-image
// Fashion-MNIST subset, train the same network for the SAME wall-clock budget
// with real_p = 1 (plain EDM) and real_p = 0.5 (Patch Diffusion), same seed,
// batch, lr and EMA, one after the other; then sample N images (seeds
// 0..N−1) from each final EMA snapshot and measure Fréchet distance and KID in
// the shipped Fashion-MNIST classifier's feature space against the full
// Fashion-MNIST train set (60,000 images), plus SWD. Real-data rows (N test
// images, N images of the 5k subset) give the floor these figures can reach
// with N samples.
//
// Each phase (training per config, sampling + metrics per config, the real-data
// rows) runs in its own child process, sequentially. Training goes through the
// project's trainingLoop (official counter, LR ramp, EMA, snapshots,
// stats.jsonl); the budget ends it through its stop request, after the step
// in progress, and the final EMA snapshot is written then.
//
//   node dist/bench/quality-budget.js [--minutes 8] [--real-p 1,0.5] [--data fashion-mnist-5k] [--arch small]
//        [--batch 32] [--lr L] [--ema MIMG] [--seed 0] [--samples 1000] [--sample-steps 18] [--sample-batch 64]
//        [--ref fashion-mnist] [--no-floor] [--threads 1] [--device auto] [--outdir DIR] [--keep] [--json FILE]
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadDataset } from '../src/data/index.js';
import { countParameters } from '../src/networks/config.js';
import { buildComponents, networkConfigFor } from '../src/train/components.js';
import { ARCHS, resolveTrainOptions, type Arch } from '../src/train/options.js';
import { createRunDir, RunLog, writeJson } from '../src/train/run-dir.js';
import { trainingLoop } from '../src/train/training-loop.js';
import { getNumThreads, resolveDevice, setNumThreads } from '../src/tensor/index.js';
import {
  benchMain, childConfig, childEnv, formatMachine, formatTable, fx, machineInfo, mean, nowIso, opt, parseOptions, peakRssMb, positiveInt,
  prepareOutdir, runAsChild, runChild, UsageError, writeJsonRecord, type OptionSpec,
} from './common.js';
import { evaluateSamples, type EvalCfg, type EvalResult } from './sample-quality.js';

const SCRIPT = fileURLToPath(import.meta.url);

// ---- children --------------------------------------------------------------------------------

interface TrainCfg {
  mode: 'train';
  label: string;
  data: string;
  arch: Arch;
  batch?: number;
  lr?: number;
  ema?: number;
  realP: number;
  seed: number;
  minutes: number;
  threads: number;
  device: string;
  outdir: string;
}
interface TrainResult {
  label: string;
  realP: number;
  runDir: string;
  snapshot: string;
  loopGrid: string | null;
  options: Record<string, unknown>;
  parameters: number;
  dataset: { name: string; length: number; resolution: number; channels: number };
  budgetSec: number;
  trainSec: number;
  kimg: number;
  steps: number;
  realImages: number;
  lossEnd: number;
  lossLast10: number;
  countedPerSec: number;
  threads: number;
  device: string;
  peakRssMb: number;
  loadStart: number[];
  loadEnd: number[];
}

type ChildCfg = TrainCfg | EvalCfg;

function readStats(runDir: string): Record<string, number>[] {
  return readFileSync(join(runDir, 'stats.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((e) => e['Loss/loss'] !== undefined);
}

async function trainChild(cfg: TrainCfg): Promise<TrainResult> {
  const loadStart = loadavg();
  setNumThreads(cfg.threads);
  const device = resolveDevice(cfg.device);
  // A duration far beyond the budget: the timer stops the run, not the counter.
  // Snapshots and training states only at the end (and the loop's own tick-0 snapshot,
  // whose small grid costs the same few seconds in both configurations).
  const o = resolveTrainOptions({
    data: cfg.data, arch: cfg.arch, batch: cfg.batch, lr: cfg.lr, ema: cfg.ema, realP: cfg.realP, seed: cfg.seed,
    duration: 100_000, threads: cfg.threads, device, outdir: cfg.outdir, desc: cfg.label,
    snap: 1_000_000, dump: 1_000_000, gridSeeds: 16, gridSteps: 18,
  });
  const ds = await loadDataset(o.data, { resolution: o.resolution, channels: o.channels, labels: o.cond, maxImages: o.maxImages, seed: o.seed });
  const components = buildComponents(o, ds, device);
  const runDir = createRunDir(o.outdir, [ds.name.replace(/[^\w.-]+/g, '_'), 'uncond', o.arch, 'pedm', `batch${o.batch}`, cfg.label]);
  const log = new RunLog(runDir);
  writeJson(join(runDir, 'training_options.json'), o);
  const parameters = countParameters(networkConfigFor(o, ds));
  log.line(`${ds.name}: ${ds.length} images; ${o.arch} with ${parameters} parameters; real_p ${o.realP}; budget ${cfg.minutes} min`);

  const stop = { requested: false };
  const budgetMs = cfg.minutes * 60_000;
  const t0 = performance.now();
  const timer = setTimeout(() => (stop.requested = true), budgetMs);
  const progress = setInterval(() => {
    try {
      const last = readStats(runDir).at(-1);
      if (last)
        console.log(`${cfg.label}: ${((performance.now() - t0) / 60_000).toFixed(1)} min, kimg ${last['Progress/kimg']!.toFixed(1)}, ` +
          `step ${last['Progress/step']}, tick loss ${last['Loss/loss']!.toFixed(4)}, ${last['Timing/images_per_sec']!.toFixed(1)} counted img/s`);
    } catch {
      /* no tick yet */
    }
  }, 60_000);
  let result;
  try {
    result = await trainingLoop({ options: o, dataset: ds, components, runDir, log, stopSignal: stop });
  } finally {
    clearTimeout(timer);
    clearInterval(progress);
  }
  // The stop is seen after the step in progress; the final snapshot and state are written after that.
  const stats = readStats(runDir);
  const last = stats.at(-1)!;
  const trainSec = last['Timing/total_sec']!;
  if (!result.lastSnapshot) throw new Error('training ended without a snapshot');
  const realImages = stats.reduce((s, e) => s + (e['Timing/real_images_per_sec'] ?? 0) * (e['Timing/sec_per_tick'] ?? 0), 0);
  const lastGrid = `samples-${String(Math.floor(result.curNimg / 1000)).padStart(6, '0')}.png`;
  return {
    label: cfg.label,
    realP: cfg.realP,
    runDir,
    snapshot: result.lastSnapshot,
    loopGrid: join(runDir, lastGrid),
    options: o as unknown as Record<string, unknown>,
    parameters,
    dataset: { name: ds.name, length: ds.length, resolution: ds.resolution, channels: ds.channels },
    budgetSec: budgetMs / 1000,
    trainSec,
    kimg: result.curNimg / 1000,
    steps: last['Progress/step']!,
    realImages: Math.round(realImages),
    lossEnd: last['Loss/loss']!,
    lossLast10: mean(stats.slice(-10).map((e) => e['Loss/loss']!)),
    countedPerSec: result.curNimg / trainSec,
    threads: getNumThreads(),
    device,
    peakRssMb: peakRssMb(),
    loadStart,
    loadEnd: loadavg(),
  };
}

// ---- parent ------------------------------------------------------------------------------------

const SPEC: Record<string, OptionSpec> = {
  minutes: { type: 'number', default: 8, help: 'wall-clock training budget per configuration, in minutes' },
  realP: { type: 'numbers', default: [1, 0.5], help: 'real_p of each configuration, trained in this order' },
  data: { type: 'string', default: 'fashion-mnist-5k', help: 'training data' },
  arch: { type: 'string', default: 'small', help: `network preset (${ARCHS.join(', ')})` },
  batch: { type: 'int', help: 'batch (default: the arch default, 32 for small)' },
  lr: { type: 'number', help: 'learning rate (default: the arch default, 1e-3 for small)' },
  ema: { type: 'number', help: 'EMA half-life in Mimg (default: the arch default, 0.005 for small)' },
  seed: { type: 'int', default: 0, help: 'training seed (weights, data order, patches, noise), the same for every configuration' },
  samples: { type: 'int', default: 1000, help: 'generated images per configuration (seeds 0..N−1)' },
  sampleSteps: { type: 'int', default: 18, help: 'Heun sampler steps (NFE = 2·steps − 1)' },
  sampleBatch: { type: 'int', default: 64, help: 'sampling batch' },
  ref: { type: 'string', default: 'fashion-mnist', help: 'reference set of the metrics (fashion-mnist: the full 60,000-image train set; or fashion-mnist-5k)' },
  metricsSeed: { type: 'int', default: 0, help: 'seed of KID subsets and SWD descriptors' },
  floor: { type: 'boolean', default: true, help: 'also measure N real images (test split, and the training subset) against the reference' },
  threads: { type: 'int', default: 1, help: 'libtorch intra-op threads (1: robust on a shared 2-core machine)' },
  device: { type: 'string', default: 'auto', help: 'cpu, cuda, cuda:N or auto' },
  outdir: { type: 'string', help: 'where the runs and sample grids go (kept); default: a temporary folder whose runs are removed at the end (grids kept) unless --keep' },
  keep: { type: 'boolean', default: false, help: 'keep the temporary folder' },
  json: { type: 'string', help: 'write a JSON record here' },
};

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/quality-budget.js [options]\n\nSame wall-clock budget, real_p = 1 vs 0.5, then FD/KID (classifier features) and SWD of samples.');
  const arch = opt.str(o, 'arch');
  if (!(ARCHS as readonly string[]).includes(arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}, got '${arch}'`);
  const minutes = opt.num(o, 'minutes');
  if (!(minutes > 0)) throw new UsageError(`--minutes must be positive, got ${minutes}`);
  const realPs = opt.list(o, 'realP');
  for (const p of realPs) if (!(p >= 0 && p <= 1)) throw new UsageError(`--real-p values must lie in [0, 1], got ${p}`);
  const threads = positiveInt(opt.num(o, 'threads'), '--threads');
  const samples = opt.num(o, 'samples');
  if (!Number.isInteger(samples) || samples < 2) throw new UsageError(`--samples must be an integer ≥ 2, got ${samples}`);
  const sampleSteps = positiveInt(opt.num(o, 'sampleSteps'), '--sample-steps');
  const sampleBatch = positiveInt(opt.num(o, 'sampleBatch'), '--sample-batch');
  setNumThreads(threads);
  const device = resolveDevice(opt.str(o, 'device'));
  const ref = opt.str(o, 'ref');
  const out = prepareOutdir(opt.strOpt(o, 'outdir'), 'pd-quality-budget');
  const keep = opt.bool(o, 'keep') || !out.temporary;
  const common = {
    data: opt.str(o, 'data'), arch: arch as Arch, batch: opt.numOpt(o, 'batch'), lr: opt.numOpt(o, 'lr'), ema: opt.numOpt(o, 'ema'),
    seed: opt.num(o, 'seed'), minutes, threads, device,
  };
  const resolved = resolveTrainOptions({ data: common.data, arch: common.arch, batch: common.batch, lr: common.lr, ema: common.ema, duration: 1 });
  const machine = machineInfo();
  const started = nowIso();
  const { env, openblasThreads } = childEnv();
  console.log('quality-budget: same wall-clock training budget, real_p 1 (EDM) vs Patch Diffusion, then sample quality');
  console.log(formatMachine(machine));
  console.log(
    `settings: --minutes ${minutes} --real-p ${realPs.join(',')} --data ${common.data} --arch ${arch} --batch ${resolved.batch} --lr ${resolved.lr} ` +
      `--ema ${resolved.ema} (Mimg half-life; lr ramp ${resolved.lrRampup} kimg, tick ${resolved.tick} kimg) --seed ${common.seed} --samples ${samples} ` +
      `--sample-steps ${sampleSteps} --sample-batch ${sampleBatch} --ref ${ref} --metrics-seed ${opt.num(o, 'metricsSeed')} --threads ${threads} --device ${device}; OpenBLAS threads ${openblasThreads}`,
  );
  console.log(`output: ${out.dir}${out.temporary ? (keep ? ' (temporary, kept)' : ' (temporary: its runs are removed at the end, the sample grids kept; --outdir or --keep keeps everything)') : ''}\n`);

  const t0 = performance.now();
  let succeeded = false;
  try {
    // 1. Training, one configuration after the other.
    const trained: TrainResult[] = [];
    for (const realP of realPs) {
      const label = `p${realP}`;
      console.log(`training real_p ${realP} for ${minutes} min…`);
      const r = await runChild<TrainResult>(SCRIPT, { mode: 'train', label, realP, ...common, outdir: join(out.dir, 'runs') } satisfies TrainCfg, { env });
      trained.push(r);
      console.log(`  done: ${fx(r.trainSec, 0)} s, ${fx(r.kimg, 1)} kimg on the counter, ${r.steps} steps, ${fx(r.realImages / 1000, 1)} k real images drawn ` +
        `(${fx(r.realImages / r.dataset.length, 1)} epochs of ${r.dataset.length}), tick loss ${fx(r.lossEnd, 4)}, snapshot ${r.snapshot}`);
    }
    // 2. Sampling and metrics per configuration; 3. the real-data floor.
    const evals: EvalResult[] = [];
    for (const r of trained) {
      console.log(`sampling ${samples} images from ${r.label} and measuring…`);
      const e = await runChild<EvalResult>(SCRIPT, {
        mode: 'eval', label: r.label, snapshot: r.snapshot, samples, steps: sampleSteps, batch: sampleBatch, ref,
        metricsSeed: opt.num(o, 'metricsSeed'), gridPath: join(out.dir, `samples-${r.label}.png`), threads, device,
      } satisfies EvalCfg, { env });
      evals.push(e);
      console.log(e.reportText.split('\n').map((l) => `  ${l}`).join('\n'));
    }
    const floors: EvalResult[] = [];
    if (opt.bool(o, 'floor')) {
      for (const real of ['fashion-mnist-test', common.data]) {
        console.log(`measuring ${samples} real images of ${real}…`);
        const e = await runChild<EvalResult>(SCRIPT, {
          mode: 'eval', label: `real ${real}`, real, samples, steps: 0, batch: sampleBatch, ref, metricsSeed: opt.num(o, 'metricsSeed'), threads, device,
        } satisfies EvalCfg, { env });
        floors.push(e);
      }
    }

    // The table.
    const first = trained[0]!;
    const refInfo = evals[0]?.report.reference;
    const net = Object.values(evals[0]?.report.networks ?? {})[0];
    console.log(`\n=== results (${first.dataset.name}: ${first.dataset.length} images ${first.dataset.resolution}×${first.dataset.resolution}×${first.dataset.channels}; ` +
      `${arch}, ${first.parameters.toLocaleString('en-US')} parameters; ${first.threads} thread(s), ${first.device}) ===`);
    console.log(`metrics: FD and KID in the 128-d feature space of the shipped Fashion-MNIST classifier${net ? ` (weights sha256 ${net.sha256.slice(0, 16)}…)` : ''}, ` +
      `SWD ×10³ (mean over pyramid levels); reference: ${refInfo ? `${refInfo.name}, ${refInfo.count} images (${refInfo.source})` : ref}; ` +
      `${samples} samples per row, seeds 0-${samples - 1}, ${sampleSteps} Heun steps (NFE ${2 * sampleSteps - 1}); metrics seed ${opt.num(o, 'metricsSeed')}\n`);
    const kid = (e: EvalResult) => {
      const k = e.report.metrics['kid-classifier'];
      return k ? `${fx(k.mean, 4)} ± ${fx(k.std, 4)}` : 'n/a';
    };
    const rows = trained.map((r, k) => {
      const e = evals[k]!;
      return [
        `real_p ${r.realP}`, fx(r.trainSec / 60, 2), fx(r.kimg, 1), String(r.steps), fx(r.realImages / 1000, 1), fx(r.realImages / r.dataset.length, 1),
        fx(r.countedPerSec, 1), fx(r.lossEnd, 4), fx(r.lossLast10, 4), fx(e.report.metrics['fd-classifier'], 3), kid(e), fx(e.report.metrics.swd?.mean, 2),
        String(e.samples), e.seeds,
      ];
    });
    for (const f of floors)
      rows.push([f.label, '-', '-', '-', '-', '-', '-', '-', '-', fx(f.report.metrics['fd-classifier'], 3), kid(f), fx(f.report.metrics.swd?.mean, 2), String(f.samples), f.seeds]);
    console.log(formatTable(
      ['config', 'wall min', 'kimg (counter)', 'steps', 'real kimg', 'epochs', 'counted img/s', 'loss end', 'loss last 10 ticks', 'FD', 'KID (mean ± std)', 'SWD×1e3', 'samples', 'seeds'],
      rows,
    ));
    console.log('\nsample grids (first 64 samples) and runs:');
    trained.forEach((r, k) => console.log(`  real_p ${r.realP}: grid ${evals[k]!.gridPath}; run ${r.runDir}; snapshot ${r.snapshot}; sampling ${fx(evals[k]!.samplingPerSec, 2)} img/s`));
    if (trained.length === 2 && evals.length === 2) {
      const [a, b] = [evals[0]!.report.metrics, evals[1]!.report.metrics];
      console.log(`\nreal_p ${trained[1]!.realP} vs real_p ${trained[0]!.realP} at the same budget: FD ${fx(b['fd-classifier']! / a['fd-classifier']!, 2)}×, ` +
        `KID ${fx(b['kid-classifier']!.mean / a['kid-classifier']!.mean, 2)}×, SWD ${fx(b.swd!.mean / a.swd!.mean, 2)}× (below 1: real_p ${trained[1]!.realP} better); ` +
        `counter ${fx(trained[1]!.kimg / trained[0]!.kimg, 2)}×, optimizer steps ${fx(trained[1]!.steps / trained[0]!.steps, 2)}×, real images ${fx(trained[1]!.realImages / trained[0]!.realImages, 2)}×`);
    }
    const notes = [...new Set(evals.flatMap((e) => e.report.notes))];
    if (notes.length) console.log(`\nnotes from the metrics:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
    console.log(`\nthe losses are per-pixel means of the EDM-weighted error over each round's crops; patch rounds see different σ-weighted
targets than full rounds, so the two configurations' losses are not directly comparable. Load average (1 min) per phase: ` +
      [...trained.map((r) => `train ${r.label} ${fx(r.loadStart[0], 2)}→${fx(r.loadEnd[0], 2)}`), ...evals.map((e) => `eval ${e.label} ${fx(e.loadStart[0], 2)}→${fx(e.loadEnd[0], 2)}`)].join(', ') +
      `. Total ${fx((performance.now() - t0) / 60_000, 1)} min.`);

    writeJsonRecord(opt.strOpt(o, 'json'), {
      benchmark: 'quality-budget',
      started,
      finished: nowIso(),
      machine,
      settings: { ...common, realP: realPs, samples, sampleSteps, sampleBatch, ref, metricsSeed: opt.num(o, 'metricsSeed'), outdir: out.dir, resolved, openblasThreads, command: process.argv.slice(2).join(' ') },
      trained,
      evals,
      floors,
    });
    succeeded = true;
  } finally {
    if (!keep) {
      // A temporary folder: the runs (snapshots, training states) go; the two small sample grids stay
      // so the paths printed above still open. After a failure nothing in it is worth keeping.
      if (succeeded) {
        rmSync(join(out.dir, 'runs'), { recursive: true, force: true });
        console.log(`\nremoved the runs in ${join(out.dir, 'runs')}; the sample grids stay in ${out.dir} (delete it when done)`);
      } else out.cleanup();
    }
  }
}

const cfg = childConfig<ChildCfg>();
if (cfg) runAsChild<ChildCfg, TrainResult | EvalResult>(cfg, (c) => (c.mode === 'train' ? trainChild(c) : evaluateSamples(c)));
else benchMain('quality-budget', parent);
