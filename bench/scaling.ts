// Data-parallel scaling on this machine, with the real `train` command run
// in turns:
// - plain full-size training (real_p 1: every step the same work, so no
//   luck in the patch-size draws): one process with 1 and with all threads,
//   N processes with cores/N threads each; images/s and the efficiency
//   against N times the single-thread process;
// - Patch Diffusion (real_p 0.5) with N processes: each drawing its own patch
//   sizes (the official behaviour) against --same-patch-size: ms/step and the
//   time a step spends averaging gradients, which includes waiting for the
//   rank that drew the largest patches;
// - the gradient all-reduce after backward (PD_DIST_OVERLAP=0) against the
//   all-reduce overlapped with backward (the default), in the real_p 1 runs
//   and, paired step by step in one run of N ranks at full size, as the time a
//   step waits after backward, with DDP's 25 MiB buckets and with 1 MiB ones;
// - the bare all-reduce of the network's gradients.
//
//   node dist/bench/scaling.js [--nproc 2] [--kimg 1.5] [--rounds 2] [--batch 32] [--arch small] [--overlap-steps 12] [--json FILE]
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { benchMain, formatMachine, formatTable, fx, machineInfo, mean, median, opt, parseOptions, prepareOutdir, writeJsonRecord, nowIso, type OptionSpec } from './common.js';

const SPEC = {
  nproc: { type: 'int', default: 2, help: 'processes of the data-parallel configuration' },
  kimg: { type: 'number', default: 1, help: 'training length of each run (kimg of patch samples)' },
  rounds: { type: 'int', default: 2, help: 'turns over the configurations (0: only the all-reduce measurements)' },
  batch: { type: 'int', default: 32, help: 'global batch (train --batch)' },
  arch: { type: 'string', default: 'small', help: 'network (train --arch)' },
  overlapSteps: { type: 'int', default: 12, help: 'steps per mode in the paired overlap measurement (0: skip it)' },
  json: { type: 'string', help: 'write the figures as JSON here' },
  allreduceChild: { type: 'string', help: '(internal)' },
  overlapChild: { type: 'string', help: '(internal)' },
} satisfies Record<string, OptionSpec>;

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface RunFigures {
  imgPerSec: number;
  msPerStep: number;
  syncMsPerStep: number | null;
}

/** One `train` run; figures from its stats.jsonl, the first tick (warm-up) left out. */
async function trainRun(outdir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunFigures> {
  const code = await new Promise<number | null>((resolve) =>
    spawn(process.execPath, [CLI, 'train', ...args, '--outdir', outdir], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } }).on('exit', resolve));
  if (code !== 0) throw new Error(`train ${args.join(' ')} exited with ${code}`);
  const runDir = join(outdir, readdirSync(outdir).sort().at(-1)!);
  const ticks = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>).filter((t) => t['Progress/tick'] !== undefined);
  const steady = ticks.slice(1);
  const stepsIn = (k: number) => ticks[k]!['Progress/step']! - (k > 0 ? ticks[k - 1]!['Progress/step']! : 0);
  return {
    imgPerSec: median(steady.map((t) => t['Timing/images_per_sec']!)),
    msPerStep: median(steady.map((t) => (t['Timing/sec_per_tick']! * 1000) / stepsIn(ticks.indexOf(t)))),
    syncMsPerStep: steady[0]?.['Timing/grad_sync_ms_per_step'] !== undefined ? mean(steady.map((t) => t['Timing/grad_sync_ms_per_step']!)) : null,
  };
}

/** A rank of the bare all-reduce measurement: the network's gradients averaged 20 times. */
async function allreduceChild(cfg: { arch: string; out: string }): Promise<void> {
  const { ProcessGroup } = await import('../src/distributed/process-group.js');
  const { presetConfig, createNetwork } = await import('../src/networks/config.js');
  const { onesLike } = await import('../src/tensor/index.js');
  const dist = (await ProcessGroup.joinFromEnvironment())!;
  const net = createNetwork(presetConfig(cfg.arch === 'small' ? 'ddpmpp-cpu' : (cfg.arch as 'ddpmpp'), { imgResolution: 32, imageChannels: 1, labelDim: 0 }), { initialize: false });
  const params = net.parameters();
  params.forEach((p) => p.requiresGrad_(true));
  params.forEach((p) => p.mul(onesLike(p)).sum().backward());
  const times: number[] = [];
  for (let k = 0; k < 23; k++) {
    dist.barrier('the timing');
    const t0 = performance.now();
    dist.averageGradients(params);
    times.push(performance.now() - t0);
  }
  const bytes = params.reduce((n, p) => n + p.numel * 4, 0);
  if (dist.isMain) writeFileSync(cfg.out, JSON.stringify({ ms: median(times.slice(3)), bytes }));
}

interface OverlapFigures {
  bucketMb: number;
  buckets: number;
  /** Per mode: the median wait after backward (and its quartiles) and the median step, ms. */
  blocking: { syncMs: number; syncIqr: [number, number]; stepMs: number };
  overlapped: { syncMs: number; syncIqr: [number, number]; stepMs: number };
}

/**
 * A rank of the paired overlap measurement: full-size training steps (the
 * real trainingStep, every rank the same work), the all-reduce after
 * backward and overlapped with it in alternate steps, each step started
 * together (a barrier, outside the timing) so one step's wait does not carry
 * into the next.
 */
async function overlapChild(cfg: { arch: string; batch: number; steps: number; out: string }): Promise<void> {
  const { ProcessGroup } = await import('../src/distributed/process-group.js');
  const { launcherThreads } = await import('../src/distributed/environment.js');
  const { loadDataset } = await import('../src/data/index.js');
  const { resolveTrainOptions } = await import('../src/train/options.js');
  const { buildComponents } = await import('../src/train/components.js');
  const { trainingStep } = await import('../src/train/step.js');
  const { useThreads } = await import('../src/tensor/index.js');
  useThreads(launcherThreads() ?? 1);
  const dist = (await ProcessGroup.joinFromEnvironment())!;
  const o = resolveTrainOptions({ data: 'fashion-mnist-5k', arch: cfg.arch as 'small', batch: cfg.batch, duration: 1, device: 'cpu' }, dist.worldSize);
  const ds = await loadDataset(o.data, { resolution: o.resolution, channels: o.channels, labels: o.cond, maxImages: o.maxImages, seed: o.seed });
  const c = buildComponents(o, ds, 'cpu', { rank: dist.rank, worldSize: dist.worldSize });
  const patchSize = Math.max(...c.patches.patchSizes);
  const times = { blocking: [] as number[][], overlapped: [] as number[][] };
  let buckets = 0;
  for (let k = 0; k < 2 * (cfg.steps + 1); k++) {
    dist.overlap = k % 2 === 1;
    dist.barrier('the timing');
    const t0 = performance.now();
    const { syncMs } = trainingStep({ options: o, components: c, curNimg: 1e5, totalNimg: 1e6, patchSize, dist });
    if (k >= 2) times[dist.overlap ? 'overlapped' : 'blocking'].push([syncMs, performance.now() - t0]);
    if (dist.overlap) buckets = dist.lastOverlap!.buckets;
  }
  const med = (xs: number[][], i: number) => median(xs.map((x) => x[i]!));
  const quartiles = (xs: number[][]): [number, number] => {
    const s = xs.map((x) => x[0]!).sort((a, b) => a - b);
    return [s[Math.floor((s.length - 1) / 4)]!, s[Math.ceil((3 * (s.length - 1)) / 4)]!];
  };
  const mode = (xs: number[][]) => ({ syncMs: med(xs, 0), syncIqr: quartiles(xs), stepMs: med(xs, 1) });
  const figures: OverlapFigures = { bucketMb: dist.bucketBytes / 2 ** 20, buckets, blocking: mode(times.blocking), overlapped: mode(times.overlapped) };
  if (dist.isMain) writeFileSync(cfg.out, JSON.stringify(figures));
}

benchMain('scaling', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/scaling.js [options]');
  const child = opt.strOpt(o, 'allreduceChild');
  if (child) return allreduceChild(JSON.parse(child));
  const ovChild = opt.strOpt(o, 'overlapChild');
  if (ovChild) return overlapChild(JSON.parse(ovChild));
  const nproc = opt.num(o, 'nproc'), cores = availableParallelism();
  const perRank = Math.max(1, Math.floor(cores / nproc));
  console.log(formatMachine(machineInfo()));
  console.log(`network ${opt.str(o, 'arch')}, global batch ${opt.num(o, 'batch')}, real_p 0.5, fashion-mnist-5k, ${opt.num(o, 'kimg')} kimg per run, ${opt.num(o, 'rounds')} rounds\n`);
  const out = prepareOutdir(undefined, 'pd-scaling');
  const common = ['--data', 'fashion-mnist-5k', '--arch', opt.str(o, 'arch'), '--batch', String(opt.num(o, 'batch')), '--duration', String(opt.num(o, 'kimg') / 1000),
    '--tick', String(opt.num(o, 'kimg') / 6000), '--snap', '100000', '--dump', '100000', '--grid-seeds', '1', '--grid-steps', '1'];
  const ranks = `${nproc} processes × ${perRank} thread${perRank > 1 ? 's' : ''}`;
  const full = ['--real-p', '1'], mix = ['--real-p', '0.5', '--duration', String((2 * opt.num(o, 'kimg')) / 1000), '--tick', String(opt.num(o, 'kimg') / 3000)];
  const configs = [
    { name: 'real_p 1: 1 process × 1 thread', args: [...full, '--threads', '1'], workers: 1 },
    { name: `real_p 1: 1 process × ${cores} threads`, args: [...full, '--threads', String(cores)], workers: cores },
    { name: `real_p 1: ${ranks}`, args: [...full, '--nproc', String(nproc)], workers: nproc },
    { name: `real_p 1: ${ranks}, all-reduce after backward (PD_DIST_OVERLAP=0)`, args: [...full, '--nproc', String(nproc)], workers: nproc, env: { PD_DIST_OVERLAP: '0' } },
    { name: `real_p 0.5: ${ranks}, own draws`, args: [...mix, '--nproc', String(nproc)], workers: nproc },
    { name: `real_p 0.5: ${ranks}, --same-patch-size`, args: [...mix, '--nproc', String(nproc), '--same-patch-size'], workers: nproc },
  ];
  const results = new Map<string, RunFigures[]>(configs.map((c) => [c.name, []]));
  let n = 0;
  for (let r = 0; r < opt.num(o, 'rounds'); r++)
    for (const c of r % 2 ? [...configs].reverse() : configs) {
      // Each round its own seed, the same for every configuration: a short run's patch-size draws are few.
      const f = await trainRun(join(out.dir, String(n++)), [...common, ...c.args, '--seed', String(r)], 'env' in c ? c.env : {});
      results.get(c.name)!.push(f);
      console.log(`  round ${r + 1}: ${c.name}: ${fx(f.imgPerSec, 1)} img/s, ${fx(f.msPerStep, 0)} ms/step${f.syncMsPerStep !== null ? `, gradient sync ${fx(f.syncMsPerStep, 1)} ms/step` : ''}`);
    }
  const arOut = join(out.dir, 'allreduce.json');
  const { launchRanks } = await import('../src/distributed/launch.js');
  if ((await launchRanks({ nproc, script: fileURLToPath(import.meta.url), args: ['--allreduce-child', JSON.stringify({ arch: opt.str(o, 'arch'), out: arOut })], graceSec: 5 })) !== 0)
    throw new Error('the all-reduce measurement failed');
  const ar = JSON.parse(readFileSync(arOut, 'utf8')) as { ms: number; bytes: number };
  const overlap: OverlapFigures[] = [];
  if (opt.num(o, 'overlapSteps') > 0) {
    for (const mb of ['25', '1']) {
      const ovOut = join(out.dir, `overlap-${mb}.json`);
      const saved = process.env.PD_DIST_BUCKET_MB;
      process.env.PD_DIST_BUCKET_MB = mb;
      try {
        const args = ['--overlap-child', JSON.stringify({ arch: opt.str(o, 'arch'), batch: opt.num(o, 'batch'), steps: opt.num(o, 'overlapSteps'), out: ovOut })];
        if ((await launchRanks({ nproc, script: fileURLToPath(import.meta.url), args, graceSec: 5 })) !== 0) throw new Error('the overlap measurement failed');
      } finally {
        if (saved === undefined) delete process.env.PD_DIST_BUCKET_MB;
        else process.env.PD_DIST_BUCKET_MB = saved;
      }
      overlap.push(JSON.parse(readFileSync(ovOut, 'utf8')) as OverlapFigures);
    }
  }
  out.cleanup();

  const fig = (name: string) => {
    const rs = results.get(name)!;
    return { imgPerSec: median(rs.map((x) => x.imgPerSec)), msPerStep: median(rs.map((x) => x.msPerStep)), sync: rs[0]!.syncMsPerStep === null ? null : median(rs.map((x) => x.syncMsPerStep!)) };
  };
  if (opt.num(o, 'rounds') > 0) {
    const [single, threads, many, manyBlocking, own, same] = configs.map((c) => fig(c.name)) as [ReturnType<typeof fig>, ReturnType<typeof fig>, ReturnType<typeof fig>, ReturnType<typeof fig>, ReturnType<typeof fig>, ReturnType<typeof fig>];
    console.log('\n' + formatTable(['configuration', 'img/s', 'ms/step', 'gradient sync ms/step', 'efficiency vs N × 1 process'], configs.map((c, k) => {
      const f = fig(c.name);
      return [c.name, fx(f.imgPerSec, 1), fx(f.msPerStep, 0), f.sync === null ? '-' : fx(f.sync, 1), k < 4 ? fx(f.imgPerSec / (c.workers * single.imgPerSec), 2) : '-'];
    })));
    console.log(`\nreal_p 1: ${ranks} vs 1 process × ${cores} threads: ${fx(many.imgPerSec / threads.imgPerSec, 2)}× the images/s`);
    console.log(`real_p 1: all-reduce overlapped with backward vs after it: ${fx(many.imgPerSec / manyBlocking.imgPerSec, 2)}× the images/s; gradient sync ${fx(manyBlocking.sync, 1)} → ${fx(many.sync, 1)} ms/step`);
    console.log(`real_p 0.5: --same-patch-size vs each rank's own draws: ${fx(own.msPerStep / same.msPerStep, 2)}× faster steps; waiting + all-reduce ${fx(own.sync, 1)} → ${fx(same.sync, 1)} ms/step`);
    console.log(`bare all-reduce of the gradients (${(ar.bytes / 2 ** 20).toFixed(1)} MiB, ${nproc} ranks, Gloo on loopback): ${fx(ar.ms, 2)} ms, ` +
      `${fx((100 * ar.ms) / many.msPerStep, 1)}% of a ${fx(many.msPerStep, 0)} ms full-size step`);
  } else console.log(`bare all-reduce of the gradients (${(ar.bytes / 2 ** 20).toFixed(1)} MiB, ${nproc} ranks, Gloo on loopback): ${fx(ar.ms, 2)} ms`);
  for (const f of overlap)
    console.log(`paired full-size steps, ${nproc} ranks, ${f.bucketMb} MiB buckets (${f.buckets} bucket${f.buckets > 1 ? 's' : ''}): wait after backward ${fx(f.blocking.syncMs, 1)} ms ` +
      `[${f.blocking.syncIqr.map((x) => fx(x, 1)).join('–')}] after it → ${fx(f.overlapped.syncMs, 1)} ms [${f.overlapped.syncIqr.map((x) => fx(x, 1)).join('–')}] overlapped (${fx(f.blocking.syncMs - f.overlapped.syncMs, 1)} ms hidden, bare all-reduce ${fx(ar.ms, 1)} ms); step ${fx(f.blocking.stepMs, 0)} → ${fx(f.overlapped.stepMs, 0)} ms`);
  writeJsonRecord(opt.strOpt(o, 'json'), { bench: 'scaling', when: nowIso(), machine: machineInfo(), nproc, results: Object.fromEntries(results), allreduce: ar, overlap });
});
