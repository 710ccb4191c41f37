// Training throughput and peak memory: full-image training (real_p = 1, plain
// EDM) against Patch Diffusion (real_p = 0.5 by default) on the same network
// and data. Each measured configuration runs in its own child process (so its
// peak RSS is its own), in alternating order Full/Patch/Full/Patch…, and the
// child times optimizer steps of exactly what the training loop does
// (src/train/training-loop.ts): per round a patch size, batch·batch_mul images,
// the patch loss summed per sample, backward, NaN scrub, Adam, EMA, and the
// official counter cur_nimg += batch·batch_mul_avg.
//
//   node dist/bench/patch-vs-full.js [--arch small] [--data fashion-mnist] [--resolution R]
//        [--batch 32] [--steps 40] [--warmup 5] [--rounds 2] [--real-p 0.5] [--threads N]
//        [--device auto] [--seed 0] [--json FILE]
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadDataset } from '../src/data/index.js';
import { countParameters } from '../src/networks/config.js';
import { reducePatchLoss } from '../src/diffusion/loss.js';
import { emaUpdate } from '../src/optim/adam.js';
import { learningRate, emaBeta } from '../src/train/schedule.js';
import { buildComponents, networkConfigFor } from '../src/train/components.js';
import { ARCHS, resolveTrainOptions, type Arch } from '../src/train/options.js';
import { getNumThreads, resolveDevice, sanitizeGradients, scope, setNumThreads, zeroGrad } from '../src/tensor/index.js';
import {
  benchMain, childConfig, childEnv, cudaPeakAllocated, formatMachine, formatTable, fx, machineInfo, median, nowIso, opt, parseOptions,
  peakRssMb, positiveInt, rssMb, runAsChild, runChild, UsageError, writeJsonRecord, type MachineInfo, type OptionSpec,
} from './common.js';

const SCRIPT = fileURLToPath(import.meta.url);

interface ChildCfg {
  label: string;
  data: string;
  arch: Arch;
  resolution?: number;
  batch: number;
  realP: number;
  steps: number;
  warmup: number;
  threads: number;
  device: string;
  seed: number;
}

interface ChildResult {
  label: string;
  realP: number;
  threads: number;
  device: string;
  dataset: { name: string; length: number; resolution: number; channels: number };
  parameters: number;
  patchSizes: number[];
  probabilities: number[];
  batchMuls: number[];
  batchMulAvg: number;
  /** Per measured step: patch size, wall ms, images drawn. */
  stepSizes: number[];
  stepMs: number[];
  stepImages: number[];
  wallSec: number;
  cpuSec: number;
  countedImages: number;
  realImages: number;
  warmupSec: number;
  finalLoss: number;
  rssBeforeTrainingMb: number;
  peakRssBeforeTrainingMb: number;
  peakRssMb: number;
  cudaPeak: { value: number | null; note: string };
}

// ---- child: one configuration ----------------------------------------------------------------------

async function child(cfg: ChildCfg): Promise<ChildResult> {
  setNumThreads(cfg.threads);
  const device = resolveDevice(cfg.device);
  // duration only bounds the counter (and the progressive schedule, unused): the loop below stops by step count.
  const o = resolveTrainOptions({
    data: cfg.data, arch: cfg.arch, resolution: cfg.resolution, batch: cfg.batch, realP: cfg.realP,
    duration: 1000, seed: cfg.seed, threads: cfg.threads, device,
  });
  const ds = await loadDataset(o.data, { resolution: o.resolution, channels: o.channels, labels: o.cond, maxImages: o.maxImages, seed: o.seed });
  const c = buildComponents(o, ds, device);
  const totalNimg = o.duration * 1e6;
  const rounds = o.batch / o.batchGpu;
  let curNimg = 0;
  let lastLoss = NaN;
  const rssBeforeTrainingMb = rssMb();
  const peakRssBeforeTrainingMb = peakRssMb();

  /** One optimizer step exactly as trainingLoop(); `force` fixes the patch size (warm-up of every size). */
  const step = async (force?: number): Promise<{ size: number; images: number }> => {
    zeroGrad(c.netParams);
    let size = 0, images = 0;
    for (let r = 0; r < rounds; r++) {
      size = force ?? c.patches.choose(curNimg, totalNimg);
      const mul = c.patches.batchMul(size);
      const n = o.batchGpu * mul;
      images += n;
      lastLoss = scope(() => {
        const b = c.batches.nextBatch(n);
        const loss = c.lossFn(b.images, b.labels, size);
        reducePatchLoss(loss, o.batch, mul).backward();
        return loss.mean().item();
      });
    }
    const imagesPerStep = o.batch * c.patches.batchMulAvgAt(curNimg, totalNimg);
    const lr = learningRate(o.lr, curNimg, o.lrRampup);
    sanitizeGradients(c.netParams);
    c.adam.step(lr);
    emaUpdate(c.emaParams, c.netParams, emaBeta(curNimg, imagesPerStep, o.ema * 1000, o.emaRampup));
    curNimg += Math.floor(imagesPerStep);
    // The training loop turns the event loop once per step (signal handling, N-API finalisers); so do we.
    await new Promise<void>((res) => setImmediate(res));
    return { size, images };
  };

  // Warm-up: one step at every drawable patch size (oneDNN primitives and allocator
  // caches for each shape), then `warmup` ordinary steps.
  const w0 = performance.now();
  for (let k = 0; k < c.patches.patchSizes.length; k++) if (c.patches.probabilities[k]! > 0) await step(c.patches.patchSizes[k]!);
  for (let k = 0; k < cfg.warmup; k++) await step();
  const warmupSec = (performance.now() - w0) / 1000;

  const stepSizes: number[] = [], stepMs: number[] = [], stepImages: number[] = [];
  const counted0 = curNimg;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < cfg.steps; k++) {
    const s0 = performance.now();
    const { size, images } = await step();
    stepMs.push(performance.now() - s0);
    stepSizes.push(size);
    stepImages.push(images);
  }
  const wallSec = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    label: cfg.label,
    realP: cfg.realP,
    threads: getNumThreads(),
    device,
    dataset: { name: ds.name, length: ds.length, resolution: ds.resolution, channels: ds.channels },
    parameters: countParameters(networkConfigFor(o, ds)),
    patchSizes: [...c.patches.patchSizes],
    probabilities: [...c.patches.probabilities],
    batchMuls: [...c.patches.batchMuls],
    batchMulAvg: c.patches.batchMulAvg,
    stepSizes, stepMs, stepImages,
    wallSec,
    cpuSec: (cpu.user + cpu.system) / 1e6,
    countedImages: curNimg - counted0,
    realImages: stepImages.reduce((a, b) => a + b, 0),
    warmupSec,
    finalLoss: lastLoss,
    rssBeforeTrainingMb,
    peakRssBeforeTrainingMb,
    peakRssMb: peakRssMb(),
    cudaPeak: cudaPeakAllocated(device),
  };
}

// ---- parent --------------------------------------------------------------------------------------

const SPEC: Record<string, OptionSpec> = {
  arch: { type: 'string', default: 'small', help: `network preset (${ARCHS.join(', ')})` },
  data: { type: 'string', default: 'fashion-mnist', help: 'dataset: built-in name or folder/zip of images' },
  resolution: { type: 'int', help: 'training resolution (default: the dataset\'s own)' },
  batch: { type: 'int', help: 'batch (slots per step; default: the arch default, 32 for small)' },
  steps: { type: 'int', default: 40, help: 'measured optimizer steps per child' },
  warmup: { type: 'int', default: 5, help: 'warm-up steps per child, after one step at each patch size' },
  rounds: { type: 'int', default: 2, help: 'child runs per configuration, alternating Full/Patch' },
  realP: { type: 'number', default: 0.5, help: 'real_p of the Patch Diffusion configuration' },
  threads: { type: 'int', default: 1, help: 'libtorch intra-op threads (1: robust on a shared 2-core machine, where 2 OpenMP threads stall behind other jobs; try 2 when idle)' },
  device: { type: 'string', default: 'auto', help: 'cpu, cuda, cuda:N or auto' },
  seed: { type: 'int', default: 0, help: 'seed of weights, data order, patch sizes, crops and noise (same for every child)' },
  json: { type: 'string', help: 'write a JSON record here' },
};

interface ConfigSummary {
  label: string;
  realP: number;
  runs: ChildResult[];
  secPerStep: number;
  countedPerSec: number;
  realPerSec: number;
  peakRssMb: number;
  peakRssMaxMb: number;
  rssBeforeTrainingMb: number;
  /** Mean step time per patch size (ms), pooled over runs. */
  perSizeMs: Record<number, { ms: number; steps: number; images: number }>;
  /** Σ p_s · t_s with the medians per size: the step time at the exact patch-size mix. */
  mixSecPerStep: number;
  mixCountedPerSec: number;
  mixRealPerSec: number;
}

function summarise(label: string, realP: number, runs: ChildResult[], batch: number): ConfigSummary {
  const first = runs[0]!;
  const perSizeMs: ConfigSummary['perSizeMs'] = {};
  for (const s of first.patchSizes) {
    const ms: number[] = [];
    let images = 0;
    for (const r of runs)
      r.stepSizes.forEach((size, k) => {
        if (size === s) {
          ms.push(r.stepMs[k]!);
          images = r.stepImages[k]!;
        }
      });
    if (ms.length) perSizeMs[s] = { ms: median(ms), steps: ms.length, images };
  }
  // Expected step time at the schedule's own mix: a run of N steps draws sizes at random, so its
  // mean step time depends on how many small/large steps it happened to draw.
  let mixMs = 0, mixReal = 0, covered = true;
  first.patchSizes.forEach((s, k) => {
    const p = first.probabilities[k]!;
    if (p === 0) return;
    const t = perSizeMs[s];
    if (!t) covered = false;
    else {
      mixMs += p * t.ms;
      mixReal += p * batch * first.batchMuls[k]!;
    }
  });
  const mixSecPerStep = covered ? mixMs / 1000 : NaN;
  return {
    label,
    realP,
    runs,
    secPerStep: median(runs.map((r) => r.wallSec / r.stepMs.length)),
    countedPerSec: median(runs.map((r) => r.countedImages / r.wallSec)),
    realPerSec: median(runs.map((r) => r.realImages / r.wallSec)),
    peakRssMb: median(runs.map((r) => r.peakRssMb)),
    peakRssMaxMb: Math.max(...runs.map((r) => r.peakRssMb)),
    rssBeforeTrainingMb: median(runs.map((r) => r.rssBeforeTrainingMb)),
    perSizeMs,
    mixSecPerStep,
    mixCountedPerSec: (batch * first.batchMulAvg) / mixSecPerStep,
    mixRealPerSec: mixReal / mixSecPerStep,
  };
}

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/patch-vs-full.js [options]\n\nTraining speed and peak memory: full-image training (real_p = 1) vs Patch Diffusion.');
  const arch = opt.str(o, 'arch');
  if (!(ARCHS as readonly string[]).includes(arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}, got '${arch}'`);
  const realP = opt.num(o, 'realP');
  if (!(realP >= 0 && realP < 1)) throw new UsageError(`--real-p must lie in [0, 1) (1 is the full-image baseline), got ${realP}`);
  const threads = positiveInt(opt.num(o, 'threads'), '--threads');
  const steps = positiveInt(opt.num(o, 'steps'), '--steps');
  const rounds = positiveInt(opt.num(o, 'rounds'), '--rounds');
  const warmup = opt.num(o, 'warmup');
  if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError(`--warmup must be a non-negative integer, got ${warmup}`);
  setNumThreads(threads);
  const device = resolveDevice(opt.str(o, 'device'));
  const batch = opt.numOpt(o, 'batch') ?? resolveTrainOptions({ data: 'x', arch: arch as Arch, duration: 1 }).batch;
  positiveInt(batch, '--batch');
  const base = {
    data: opt.str(o, 'data'), arch: arch as Arch, resolution: opt.numOpt(o, 'resolution'), batch, steps, warmup, threads, device, seed: opt.num(o, 'seed'),
  };
  const machine: MachineInfo = machineInfo();
  const started = nowIso();
  const { env, openblasThreads } = childEnv();

  console.log('patch-vs-full: training throughput and peak memory, full-image training vs Patch Diffusion');
  console.log(formatMachine(machine));
  console.log(
    `settings: --arch ${arch} --data ${base.data}${base.resolution ? ` --resolution ${base.resolution}` : ''} --batch ${batch} --steps ${steps} ` +
      `--warmup ${warmup} --rounds ${rounds} --real-p ${realP} --threads ${threads} --device ${device} --seed ${base.seed}; OpenBLAS threads ${openblasThreads}`,
  );
  console.log(`each child: load data, build the network, one warm-up step per patch size, ${warmup} warm-up steps, then ${steps} timed steps; ` +
    `children alternate Full/Patch${rounds > 1 ? '/Full/Patch…' : ''}, one at a time\n`);

  const configs = [
    { label: 'Full (real_p 1, EDM)', realP: 1 },
    { label: `Patch (real_p ${realP})`, realP },
  ];
  const runs: ChildResult[][] = configs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < configs.length; k++) {
      const cfg = configs[k]!;
      const t0 = performance.now();
      const res = await runChild<ChildResult>(SCRIPT, { ...base, label: cfg.label, realP: cfg.realP } satisfies ChildCfg, { env });
      runs[k]!.push(res);
      console.log(
        `  round ${r + 1}/${rounds} ${cfg.label.padEnd(22)} ${fx(res.wallSec / steps, 3)} s/step, ${fx(res.countedImages / res.wallSec, 1)} counted img/s, ` +
          `${fx(res.realImages / res.wallSec, 1)} real img/s, peak RSS ${fx(res.peakRssMb, 0)} MiB, loss ${fx(res.finalLoss, 4)} ` +
          `(child ${fx((performance.now() - t0) / 1000, 0)} s incl. start-up, ${fx(res.warmupSec, 1)} s warm-up)`,
      );
    }
  }
  const full = summarise(configs[0]!.label, 1, runs[0]!, batch);
  const patch = summarise(configs[1]!.label, realP, runs[1]!, batch);
  const first = runs[1]![0]!;
  const ds = first.dataset;

  console.log(`\nnetwork: ${arch}, ${first.parameters.toLocaleString('en-US')} parameters; data: ${ds.name}, ${ds.length} images, ${ds.resolution}×${ds.resolution}×${ds.channels}; ` +
    `batch ${batch}; ${first.threads} threads; device ${first.device}`);
  console.log(`medians over ${rounds} child run(s) per configuration, ${steps} timed steps each:\n`);
  const mixNote = (s: ConfigSummary) =>
    Object.entries(s.perSizeMs).map(([size, t]) => `${size}²: ${t.steps}`).join(', ');
  const rows = [full, patch].map((s) => [
    s.label,
    fx(s.secPerStep, 3),
    fx(s.countedPerSec, 1),
    fx(s.realPerSec, 1),
    fx((1e6 / s.countedPerSec) / 3600, 2),
    fx(s.rssBeforeTrainingMb, 0),
    fx(s.peakRssMb, 0),
    s.runs[0]!.cudaPeak.value === null ? 'n/a' : fx(s.runs[0]!.cudaPeak.value, 0),
    mixNote(s),
  ]);
  console.log(formatTable(
    ['config', 's/step', 'counted img/s', 'real img/s', 'h per Mimg', 'RSS pre-train MiB', 'peak RSS MiB', 'CUDA peak MiB', 'timed steps by patch size'],
    rows,
  ));
  console.log(`CUDA peak: ${first.cudaPeak.note}`);

  // Per patch size.
  console.log('\nmedian step time by patch size (pooled over runs):');
  const sizeRows: string[][] = [];
  for (const s of [full, patch])
    for (const [size, t] of Object.entries(s.perSizeMs))
      sizeRows.push([`${s.label}`, `${size}×${size}`, String(t.images), fx(t.ms, 1), fx((t.images * 1000) / t.ms, 1), fx(((t.images * Number(size) ** 2) / (ds.resolution ** 2) * 1000) / t.ms, 1), String(t.steps)]);
  console.log(formatTable(['config', 'patch', 'images/step', 'ms/step', 'patches/s', 'full-image-equivalents/s', 'steps'], sizeRows));

  // Ratios.
  const speedup = patch.countedPerSec / full.countedPerSec;
  const paired = runs[1]!.map((p, r) => p.countedImages / p.wallSec / (runs[0]![r]!.countedImages / runs[0]![r]!.wallSec));
  const mixSpeedup = patch.mixCountedPerSec / full.mixCountedPerSec;
  const R = ds.resolution;
  const pixelsPerSlot = first.patchSizes.reduce((acc, s, k) => acc + first.probabilities[k]! * first.batchMuls[k]! * (s / R) ** 2, 0);
  const theory = first.batchMulAvg / pixelsPerSlot;
  console.log(`\nPatch/Full (real_p ${realP} vs 1):`);
  console.log(`  speed-up in counted images/s (the official counter):   ${fx(speedup, 2)}× (medians); per round ${paired.map((x) => fx(x, 2) + '×').join(', ')}`);
  console.log(`  time to reach the same duration (Mimg on the counter): ${fx(1 / speedup, 2)} of the full-image time (${fx(speedup, 2)}× faster)`);
  console.log(`  at the exact patch-size mix (Σ p_s·t_s per step):      ${fx(mixSpeedup, 2)}× (step time ${fx(patch.mixSecPerStep, 3)} s vs ${fx(full.mixSecPerStep, 3)} s)`);
  console.log(`  real images drawn/s:                                   ${fx(patch.realPerSec / full.realPerSec, 2)}×`);
  console.log(`  peak RSS:                                              ${fx(patch.peakRssMb / full.peakRssMb, 2)}× (${fx(patch.peakRssMb, 0)} vs ${fx(full.peakRssMb, 0)} MiB)`);
  console.log(`  theoretical (cost ∝ pixels):                            ${fx(theory, 2)}×`);

  const terms = first.patchSizes.map((s, k) => `${fx(first.probabilities[k]!, 2)}·${first.batchMuls[k]}·(${s}/${R})² = ${fx(first.probabilities[k]! * first.batchMuls[k]! * (s / R) ** 2, 3)}`);
  console.log(`
why ~${fx(theory, 1)}×: each batch slot of a Patch Diffusion step is, with probability p_s, a round of patch size s
that draws batch_mul = R/s images; the counter adds batch·batch_mul_avg per step whatever size was drawn.
  counted images per slot:  batch_mul_avg = Σ p_s·(R/s) = ${fx(first.batchMulAvg, 2)}
  pixels per slot (in full images): Σ p_s·(R/s)·(s/R)² = ${terms.join(' + ')} = ${fx(pixelsPerSlot, 3)}
so one counted image costs ${fx(pixelsPerSlot / first.batchMulAvg, 3)} of a full image's pixels (full-image training: 1 per counted image),
i.e. ${fx(theory, 2)}× fewer pixels per counted image. The batch multiplier is R/s (linear in the side, as the official table
at R = 64; see src/diffusion/patches.ts), so small-patch rounds process fewer pixels than a full round; with an area-preserving
multiplier (R/s)² the pixels per slot would be 1 and the gain would vanish.
measured: ${fx(speedup, 2)}× in counted images/s over the steps drawn (${fx(mixSpeedup, 2)}× at the exact mix Σ p_s·t_s).`);
  // Pixel throughput of each patch size relative to full-image steps: 100% means cost ∝ pixels.
  const fullRate = (full.perSizeMs[R]!.images * 1000) / full.perSizeMs[R]!.ms;
  const eff = Object.entries(patch.perSizeMs).map(([size, t]) => {
    const rate = ((t.images * (Number(size) / R) ** 2) * 1000) / t.ms;
    return { size: Number(size), rel: rate / fullRate };
  });
  const drawn = first.patchSizes.map((sz) => runs[1]!.reduce((n, r) => n + r.stepSizes.filter((x) => x === sz).length, 0));
  const totalDrawn = drawn.reduce((a, b) => a + b, 0);
  console.log(`pixel throughput relative to full-image steps: ${eff.map((e) => `${e.size}×${e.size} ${fx(100 * e.rel, 0)}%`).join(', ')} (100% = cost ∝ pixels);`);
  console.log(`patch sizes drawn in the timed steps: ${first.patchSizes.map((sz, k) => `${sz}² ${drawn[k]}/${totalDrawn} (expected ${fx(first.probabilities[k]! * totalDrawn, 0)})`).join(', ')}.`);
  const small = eff.filter((e) => e.size < R);
  if (mixSpeedup >= 0.9 * theory)
    console.log(`the measured gain is close to the pixel-proportional ${fx(theory, 2)}×: on this CPU a step's cost is dominated by convolution
arithmetic, which scales with the pixels processed; per-sample work (noise embedding, σ, crops, coordinates) and per-op
overhead are small next to it${small.some((e) => e.rel < 0.85) ? `, though the smallest patches run at a lower pixel throughput` : ''}.`);
  else
    console.log(`the gap to ${fx(theory, 2)}× is the part of a step that does not scale with pixels: per-sample work (noise embedding, σ,
loss weights, crops, coordinates), per-op dispatch and binding overhead (fixed per call, a larger share for small tensors),
and the lower arithmetic efficiency of convolutions on small maps (see the pixel throughputs above).`);
  const rssRatio = patch.peakRssMb / full.peakRssMb;
  console.log(Math.abs(rssRatio - 1) < 0.15
    ? `peak memory is about the same (${fx(rssRatio, 2)}×): the largest round of a Patch Diffusion step is a full-size round of batch ${batch}
(probability ${fx(first.probabilities.at(-1)!, 2)}), as large as a full-image step; patches lower the average, not the peak.`
    : `peak memory ratio ${fx(rssRatio, 2)}×.`);

  writeJsonRecord(opt.strOpt(o, 'json'), {
    benchmark: 'patch-vs-full',
    started,
    finished: nowIso(),
    machine,
    settings: { ...base, realP, rounds, openblasThreads, command: process.argv.slice(2).join(' ') },
    configs: [full, patch].map((s) => ({ ...s, runs: s.runs })),
    ratios: { countedSpeedup: speedup, countedSpeedupPerRound: paired, mixSpeedup, realImagesRatio: patch.realPerSec / full.realPerSec, peakRssRatio: patch.peakRssMb / full.peakRssMb, theoretical: theory, pixelsPerSlot, batchMulAvg: first.batchMulAvg },
  });
}

const cfg = childConfig<ChildCfg>();
if (cfg) runAsChild(cfg, child);
else benchMain('patch-vs-full', parent);
