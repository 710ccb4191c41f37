// Sampling speed and peak memory of the EDM Heun sampler (generate.py's
// deterministic sampler: N steps, NFE = 2N − 1) at the training resolution and
// on a larger canvas (coordinate extrapolation: the coordinate grid runs past
// [−1, 1]), for several batch sizes. Each configuration runs in its own child
// process, so its peak RSS is its own. The network is a randomly initialised
// `small` (or --arch) network, or a trained snapshot (--network); sampling
// costs the same either way.
//
//   node dist/bench/sampling.js [--network SNAPSHOT|RUN_DIR] [--arch small] [--resolution 32] [--channels 1]
//        [--steps 18,50] [--canvas 1,2] [--batches 16,64] [--all] [--repeats 1] [--rounds 1]
//        [--threads 1] [--device auto] [--seed 0] [--json FILE]
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createNetwork, presetConfig, type PresetName } from '../src/networks/config.js';
import type { Preconditioner } from '../src/networks/precond.js';
import { generateImages, toUint8 } from '../src/diffusion/sampler.js';
import { loadSnapshotNetwork } from '../src/model/load-network.js';
import { ARCHS, type Arch } from '../src/train/options.js';
import { Generator, getNumThreads, noGrad, resolveDevice, setNumThreads, type Device } from '../src/tensor/index.js';
import {
  benchMain, childConfig, childEnv, cudaPeakAllocated, formatMachine, formatTable, fx, machineInfo, median, nowIso, opt, parseOptions,
  peakRssMb, positiveInt, rssMb, runAsChild, runChild, UsageError, writeJsonRecord, type OptionSpec,
} from './common.js';

const SCRIPT = fileURLToPath(import.meta.url);
const PRESET_OF_ARCH: Record<Arch, PresetName> = { ddpmpp: 'ddpmpp', ncsnpp: 'ncsnpp', adm: 'adm', small: 'ddpmpp-cpu' };

interface ChildCfg {
  network?: string;
  arch: Arch;
  resolution: number;
  channels: number;
  steps: number;
  canvasFactor: number;
  batch: number;
  repeats: number;
  threads: number;
  device: string;
  seed: number;
}

interface ChildResult {
  cfg: ChildCfg;
  threads: number;
  device: string;
  network: string;
  parameters: number;
  resolution: number;
  canvas: number;
  nfe: number;
  warmupSec: number;
  batchSec: number[];
  imagesPerSec: number;
  msPerNfe: number;
  rssBeforeSamplingMb: number;
  peakRssMb: number;
  cudaPeak: { value: number | null; note: string };
  pixelMean: number;
}

// ---- child -------------------------------------------------------------------------------------

async function child(cfg: ChildCfg): Promise<ChildResult> {
  setNumThreads(cfg.threads);
  const device: Device = resolveDevice(cfg.device);
  let net: Preconditioner;
  let resolution = cfg.resolution;
  let name: string;
  if (cfg.network) {
    const loaded = loadSnapshotNetwork(cfg.network, device);
    net = loaded.net;
    resolution = loaded.info.dataset.resolution;
    name = `snapshot ${loaded.path} (${loaded.info.kimg} kimg)`;
    if (loaded.info.dataset.labelDim) throw new Error('the sampling benchmark runs unconditional networks; this snapshot is class-conditional');
  } else {
    const config = presetConfig(PRESET_OF_ARCH[cfg.arch], { imgResolution: cfg.resolution, imageChannels: cfg.channels });
    net = createNetwork(config, { generator: new Generator(cfg.seed) });
    net.to({ device }).eval();
    name = `randomly initialised ${cfg.arch} (seed ${cfg.seed})`;
  }
  const canvas = resolution * cfg.canvasFactor;
  if (!Number.isInteger(canvas) || canvas % net.sizeMultiple !== 0)
    throw new Error(`canvas ${canvas} is not a multiple of ${net.sizeMultiple}, which the network needs`);
  const denoise = (x: Parameters<Preconditioner['forward']>[0], s: Parameters<Preconditioner['forward']>[1], pos: Parameters<Preconditioner['forward']>[2]) =>
    net.forward(x, s, pos, null);
  const run = (seeds: number[], numSteps: number) =>
    noGrad(() => {
      const { images } = generateImages(denoise, { seeds, channels: net.outChannels, resolution, numSteps, device, imageSize: canvas });
      try {
        return toUint8(images);
      } finally {
        images.dispose();
      }
    });
  const rssBeforeSamplingMb = rssMb();
  // Warm-up: the same batch and canvas for 2 steps (3 network calls), so every shape is seen once.
  const w0 = performance.now();
  run(Array.from({ length: cfg.batch }, (_, k) => 1_000_000 + k), 2);
  const warmupSec = (performance.now() - w0) / 1000;
  const batchSec: number[] = [];
  let pixelSum = 0, pixelCount = 0;
  for (let r = 0; r < cfg.repeats; r++) {
    const seeds = Array.from({ length: cfg.batch }, (_, k) => r * cfg.batch + k);
    const t0 = performance.now();
    const out = run(seeds, cfg.steps);
    batchSec.push((performance.now() - t0) / 1000);
    for (const v of out.data) pixelSum += v;
    pixelCount += out.data.length;
  }
  const sec = median(batchSec);
  const nfe = 2 * cfg.steps - 1;
  const result: ChildResult = {
    cfg,
    threads: getNumThreads(),
    device,
    network: name,
    parameters: net.parameterCount(),
    resolution,
    canvas,
    nfe,
    warmupSec,
    batchSec,
    imagesPerSec: cfg.batch / sec,
    msPerNfe: (sec * 1000) / nfe,
    rssBeforeSamplingMb,
    peakRssMb: peakRssMb(),
    cudaPeak: cudaPeakAllocated(device),
    pixelMean: pixelSum / Math.max(1, pixelCount),
  };
  net.dispose();
  return result;
}

// ---- parent -------------------------------------------------------------------------------------

const SPEC: Record<string, OptionSpec> = {
  network: { type: 'string', help: 'a network snapshot (or run directory) to sample from; default: a randomly initialised --arch network' },
  arch: { type: 'string', default: 'small', help: `preset of the random network (${ARCHS.join(', ')})` },
  resolution: { type: 'int', default: 32, help: 'training resolution of the random network' },
  channels: { type: 'int', default: 1, help: 'image channels of the random network (1 = Fashion-MNIST)' },
  steps: { type: 'ints', default: [18, 50], help: 'sampler steps (NFE = 2·steps − 1)' },
  canvas: { type: 'numbers', default: [1, 2], help: 'canvas side as a multiple of the training resolution' },
  batches: { type: 'ints', default: [16, 64], help: 'batch sizes' },
  all: { type: 'boolean', default: false, help: 'every combination; by default step counts after the first run only at canvas 1× (time scales with NFE)' },
  repeats: { type: 'int', default: 1, help: 'timed batches per child (median reported)' },
  rounds: { type: 'int', default: 1, help: 'passes over the configurations (alternating their order)' },
  threads: { type: 'int', default: 1, help: 'libtorch intra-op threads (1: robust on a shared 2-core machine; try 2 when idle)' },
  device: { type: 'string', default: 'auto', help: 'cpu, cuda, cuda:N or auto' },
  seed: { type: 'int', default: 0, help: 'seed of the random network (sample seeds are 0..batch−1)' },
  json: { type: 'string', help: 'write a JSON record here' },
};

async function parent(): Promise<void> {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/sampling.js [options]\n\nEDM Heun sampling speed and peak memory, at the training resolution and on a larger canvas.');
  const arch = opt.str(o, 'arch');
  if (!(ARCHS as readonly string[]).includes(arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}, got '${arch}'`);
  const channels = opt.num(o, 'channels');
  if (channels !== 1 && channels !== 3) throw new UsageError(`--channels must be 1 or 3, got ${channels}`);
  const threads = positiveInt(opt.num(o, 'threads'), '--threads');
  const repeats = positiveInt(opt.num(o, 'repeats'), '--repeats');
  const rounds = positiveInt(opt.num(o, 'rounds'), '--rounds');
  const stepsList = opt.list(o, 'steps').map((s) => positiveInt(s, '--steps'));
  const batches = opt.list(o, 'batches').map((b) => positiveInt(b, '--batches'));
  const canvases = opt.list(o, 'canvas');
  for (const c of canvases) if (!(c > 0)) throw new UsageError(`--canvas factors must be positive, got ${c}`);
  setNumThreads(threads);
  const device = resolveDevice(opt.str(o, 'device'));
  const network = opt.strOpt(o, 'network');
  const base = { network, arch: arch as Arch, resolution: positiveInt(opt.num(o, 'resolution'), '--resolution'), channels, repeats, threads, device, seed: opt.num(o, 'seed') };

  const configs: ChildCfg[] = [];
  for (const steps of stepsList)
    for (const canvasFactor of canvases) {
      if (!opt.bool(o, 'all') && steps !== stepsList[0] && canvasFactor !== 1) continue;
      for (const batch of batches) configs.push({ ...base, steps, canvasFactor, batch });
    }
  const machine = machineInfo();
  const started = nowIso();
  const { env, openblasThreads } = childEnv();
  console.log('sampling: EDM Heun sampler speed and peak memory');
  console.log(formatMachine(machine));
  console.log(
    `settings: ${network ? `--network ${network}` : `--arch ${arch} --resolution ${base.resolution} --channels ${channels} (random weights, seed ${base.seed})`} ` +
      `--steps ${stepsList.join(',')} --canvas ${canvases.join(',')} --batches ${batches.join(',')}${opt.bool(o, 'all') ? ' --all' : ''} ` +
      `--repeats ${repeats} --rounds ${rounds} --threads ${threads} --device ${device}; OpenBLAS threads ${openblasThreads}`,
  );
  console.log(`${configs.length} configurations, each in its own child: build the network, warm up with a 2-step run of the same batch and canvas, ` +
    `then time ${repeats} batch(es) of the full sampler (deterministic Heun, σ 0.002…80, ρ 7, float64 state), including the conversion to uint8\n`);

  const results: ChildResult[][] = configs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = configs.map((_, k) => k);
    if (r % 2 === 1) order.reverse();
    for (const k of order) {
      const cfg = configs[k]!;
      const t0 = performance.now();
      const res = await runChild<ChildResult>(SCRIPT, cfg, { env });
      results[k]!.push(res);
      console.log(`  ${String(cfg.steps).padStart(3)} steps, canvas ${res.canvas}², batch ${String(cfg.batch).padStart(3)}: ${fx(median(res.batchSec), 2)} s/batch, ` +
        `${fx(res.imagesPerSec, 2)} img/s, peak RSS ${fx(res.peakRssMb, 0)} MiB (child ${fx((performance.now() - t0) / 1000, 0)} s)`);
    }
  }
  const first = results[0]![0]!;
  console.log(`\nnetwork: ${first.network}, ${first.parameters.toLocaleString('en-US')} parameters, trained at ${first.resolution}×${first.resolution}; ` +
    `${first.threads} threads; device ${first.device}\n`);
  const rows = configs.map((cfg, k) => {
    const rs = results[k]!;
    const ips = median(rs.map((x) => x.imagesPerSec));
    const x = rs[0]!;
    return {
      cfg,
      canvas: x.canvas,
      nfe: x.nfe,
      sec: median(rs.map((y) => median(y.batchSec))),
      ips,
      msPerNfe: median(rs.map((y) => y.msPerNfe)),
      perImageNfe: (median(rs.map((y) => y.msPerNfe)) / cfg.batch),
      rssBefore: median(rs.map((y) => y.rssBeforeSamplingMb)),
      peak: median(rs.map((y) => y.peakRssMb)),
      cuda: x.cudaPeak,
    };
  });
  console.log(formatTable(
    ['steps', 'NFE', 'canvas', 'coords span', 'batch', 's/batch', 'img/s', 'ms per NFE', 'ms per NFE·image', 'RSS pre-sample MiB', 'peak RSS MiB', 'CUDA peak MiB'],
    rows.map((r) => {
      const span = (2 * (r.canvas - 1)) / (first.resolution - 1) - 1; // coord(k) = 2k/(R−1) − 1 at the last pixel
      return [String(r.cfg.steps), String(r.nfe), `${r.canvas}×${r.canvas}`, `[-1, ${fx(span, 2)}]`, String(r.cfg.batch), fx(r.sec, 2), fx(r.ips, 2), fx(r.msPerNfe, 1), fx(r.perImageNfe, 2),
        fx(r.rssBefore, 0), fx(r.peak, 0), r.cuda.value === null ? 'n/a' : fx(r.cuda.value, 0)];
    }),
  ));
  console.log(`CUDA peak: ${first.cudaPeak.note}`);
  // Ratios measured within this run.
  const find = (steps: number, canvasFactor: number, batch: number) => rows.find((r) => r.cfg.steps === steps && r.cfg.canvasFactor === canvasFactor && r.cfg.batch === batch);
  const lines: string[] = [];
  const s0 = stepsList[0]!;
  for (const b of batches) {
    const a = find(s0, 1, b), c = find(s0, canvases.find((f) => f !== 1) ?? 1, b);
    if (a && c && c !== a) lines.push(`  canvas ${c.canvas}² vs ${a.canvas}² at batch ${b}, ${s0} steps: ${fx(a.ips / c.ips, 2)}× slower per image (pixels ×${fx((c.canvas / a.canvas) ** 2, 1)}), peak RSS ${fx(c.peak / a.peak, 2)}×`);
    for (const s of stepsList.slice(1)) {
      const d = find(s, 1, b);
      if (a && d) lines.push(`  ${s} vs ${s0} steps at batch ${b}, canvas ${a.canvas}²: ${fx(a.ips / d.ips, 2)}× slower (NFE ×${fx(d.nfe / a.nfe, 2)})`);
    }
  }
  if (batches.length > 1) {
    const [b0, b1] = [batches[0]!, batches.at(-1)!];
    for (const f of canvases) {
      const a = find(s0, f, b0), c = find(s0, f, b1);
      if (a && c) lines.push(`  batch ${b1} vs ${b0} at canvas ${a.canvas}², ${s0} steps: ${fx(c.ips / a.ips, 2)}× the images/s, peak RSS +${fx(c.peak - a.peak, 0)} MiB`);
    }
  }
  if (lines.length) console.log(`\nratios (within this run):\n${lines.join('\n')}`);
  console.log(`\nnotes: NFE = 2·steps − 1 (Heun correction on every step but the last). The canvas beyond the training resolution extends the
coordinate channels past +1 (x_start = y_start = 0), the coordinate-extrapolation feature of generate.py. Convolutions cost in
proportion to the pixels, but self-attention (small: at the nominal 16×16 level and the 8×8 bottleneck) is quadratic in its tokens, so on a k× canvas
its cost and its [heads, tokens, tokens] score matrices grow k⁴×: the larger canvas costs more than its pixel ratio, and most at
large batches. Peak RSS includes the process baseline (Node, libtorch, the network), shown as "RSS pre-sample".`);

  writeJsonRecord(opt.strOpt(o, 'json'), {
    benchmark: 'sampling',
    started,
    finished: nowIso(),
    machine,
    settings: { ...base, steps: stepsList, canvas: canvases, batches, all: opt.bool(o, 'all'), rounds, openblasThreads, command: process.argv.slice(2).join(' ') },
    results: rows,
    runs: results,
  });
}

const cfg = childConfig<ChildCfg>();
if (cfg) runAsChild(cfg, child);
else benchMain('sampling', parent);
