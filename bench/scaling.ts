// Data-parallel scaling on this machine: the real `train` command as one
// process with 1 and with all threads, and as N processes (--nproc) with
// cores/N threads each, run in turns; images/s (the official counter) per
// configuration, the efficiency of N processes against N times one
// single-thread process, the time each step spends averaging gradients
// (which includes waiting for the slowest rank: ranks draw their own patch
// sizes), and the bare all-reduce of the network's gradients.
//
//   node dist/bench/scaling.js [--nproc 2] [--kimg 1.5] [--rounds 2] [--batch 32] [--arch small] [--json FILE]
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
  kimg: { type: 'number', default: 1.5, help: 'training length of each run (kimg of patch samples)' },
  rounds: { type: 'int', default: 2, help: 'turns over the configurations' },
  batch: { type: 'int', default: 32, help: 'global batch (train --batch)' },
  arch: { type: 'string', default: 'small', help: 'network (train --arch)' },
  json: { type: 'string', help: 'write the figures as JSON here' },
  'allreduce-child': { type: 'string', help: '(internal)' },
} satisfies Record<string, OptionSpec>;

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface RunFigures {
  imgPerSec: number;
  msPerStep: number;
  syncMsPerStep: number | null;
}

/** One `train` run; figures from its stats.jsonl, the first tick (warm-up) left out. */
async function trainRun(outdir: string, args: string[]): Promise<RunFigures> {
  const code = await new Promise<number | null>((resolve) => spawn(process.execPath, [CLI, 'train', ...args, '--outdir', outdir], { stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', resolve));
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
  const { readRankEnvironment } = await import('../src/dist/environment.js');
  const { ProcessGroup } = await import('../src/dist/process-group.js');
  const { presetConfig, createNetwork } = await import('../src/networks/config.js');
  const { onesLike } = await import('../src/tensor/index.js');
  const dist = await ProcessGroup.join(readRankEnvironment()!);
  const net = createNetwork(presetConfig(cfg.arch === 'small' ? 'ddpmpp-cpu' : (cfg.arch as 'ddpmpp'), { imgResolution: 32, imageChannels: 1, labelDim: 0 }));
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

benchMain('scaling', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/scaling.js [options]');
  const child = opt.strOpt(o, 'allreduce-child');
  if (child) return allreduceChild(JSON.parse(child));
  const nproc = opt.num(o, 'nproc'), cores = availableParallelism();
  const perRank = Math.max(1, Math.floor(cores / nproc));
  console.log(formatMachine(machineInfo()));
  console.log(`network ${opt.str(o, 'arch')}, global batch ${opt.num(o, 'batch')}, real_p 0.5, fashion-mnist-5k, ${opt.num(o, 'kimg')} kimg per run, ${opt.num(o, 'rounds')} rounds\n`);
  const out = prepareOutdir(undefined, 'pd-scaling');
  const common = ['--data', 'fashion-mnist-5k', '--arch', opt.str(o, 'arch'), '--batch', String(opt.num(o, 'batch')), '--duration', String(opt.num(o, 'kimg') / 1000),
    '--tick', String(opt.num(o, 'kimg') / 6000), '--snap', '100000', '--dump', '100000', '--grid-seeds', '1', '--grid-steps', '1'];
  const configs = [
    { name: '1 process × 1 thread', args: ['--threads', '1'] },
    { name: `1 process × ${cores} threads`, args: ['--threads', String(cores)] },
    { name: `${nproc} processes × ${perRank} thread${perRank > 1 ? 's' : ''}`, args: ['--nproc', String(nproc)] },
  ];
  const results = new Map<string, RunFigures[]>(configs.map((c) => [c.name, []]));
  let n = 0;
  for (let r = 0; r < opt.num(o, 'rounds'); r++)
    for (const c of r % 2 ? [...configs].reverse() : configs) {
      const f = await trainRun(join(out.dir, String(n++)), [...common, ...c.args]);
      results.get(c.name)!.push(f);
      console.log(`  round ${r + 1}: ${c.name}: ${fx(f.imgPerSec, 1)} img/s, ${fx(f.msPerStep, 0)} ms/step${f.syncMsPerStep !== null ? `, gradient sync ${fx(f.syncMsPerStep, 1)} ms/step` : ''}`);
    }
  const arOut = join(out.dir, 'allreduce.json');
  const { launchRanks } = await import('../src/dist/launch.js');
  if ((await launchRanks({ nproc, script: fileURLToPath(import.meta.url), args: ['--allreduce-child', JSON.stringify({ arch: opt.str(o, 'arch'), out: arOut })], graceSec: 5 })) !== 0)
    throw new Error('the all-reduce measurement failed');
  const ar = JSON.parse(readFileSync(arOut, 'utf8')) as { ms: number; bytes: number };
  out.cleanup();

  const fig = (name: string) => {
    const rs = results.get(name)!;
    return { imgPerSec: median(rs.map((x) => x.imgPerSec)), msPerStep: median(rs.map((x) => x.msPerStep)), sync: rs[0]!.syncMsPerStep === null ? null : median(rs.map((x) => x.syncMsPerStep!)) };
  };
  const single = fig(configs[0]!.name), many = fig(configs[2]!.name), threads = fig(configs[1]!.name);
  console.log('\n' + formatTable(['configuration', 'img/s', 'ms/step', 'gradient sync ms/step', 'efficiency vs N × 1 process'], configs.map((c) => {
    const f = fig(c.name);
    const workers = c === configs[0] ? 1 : c === configs[1] ? cores : nproc;
    return [c.name, fx(f.imgPerSec, 1), fx(f.msPerStep, 0), f.sync === null ? '-' : fx(f.sync, 1), c === configs[0] ? '1.00' : fx(f.imgPerSec / (workers * single.imgPerSec), 2)];
  })));
  console.log(`\n${configs[2]!.name} vs ${configs[1]!.name}: ${fx(many.imgPerSec / threads.imgPerSec, 2)}× the images/s`);
  console.log(`bare all-reduce of the gradients (${(ar.bytes / 2 ** 20).toFixed(1)} MiB, ${nproc} ranks, Gloo on loopback): ${fx(ar.ms, 2)} ms; ` +
    `${fx((100 * ar.ms) / many.msPerStep, 1)}% of a ${fx(many.msPerStep, 0)} ms step (the rest of the sync time is waiting for the slower rank)`);
  writeJsonRecord(opt.strOpt(o, 'json'), { bench: 'scaling', when: nowIso(), machine: machineInfo(), nproc, results: Object.fromEntries(results), allreduce: ar });
});
