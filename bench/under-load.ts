// A training step when the machine is not ours alone: for each thread and
// OpenMP wait setting, ms/step with the machine idle and with one competing
// CPU-bound process (a busy loop, as a compile or a browser tab would be),
// measured in turns (idle, loaded, idle, loaded …) in one warm child per
// setting. With 2 threads on 2 cores a team whose threads spin at every
// barrier loses far more than the competitor's share of the CPU when one of
// them is descheduled; the ideal is proportional (a third of the CPU gone:
// 1.5× the idle step).
//
//   node dist/bench/under-load.js [--arch small] [--batch 32] [--patch 16] [--steps 4] [--rounds 2]
//        [--precision fp32|bf16] [--settings default,spin10k,spin1k,passive,t1,adaptive]
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchMain, formatMachine, formatTable, machineInfo, median, opt, parseOptions, UsageError, type OptionSpec } from './common.js';

/** The settings compared: environment for libgomp and thread count. */
const SETTINGS: Record<string, { label: string; env: Record<string, string>; threads?: number; adaptive?: boolean }> = {
  default: { label: 'all cores, libgomp defaults (fixed --threads)', env: {} },
  spin10k: { label: 'GOMP_SPINCOUNT=10000', env: { GOMP_SPINCOUNT: '10000' } },
  spin1k: { label: 'GOMP_SPINCOUNT=1000', env: { GOMP_SPINCOUNT: '1000' } },
  passive: { label: 'OMP_WAIT_POLICY=PASSIVE', env: { OMP_WAIT_POLICY: 'PASSIVE' } },
  t1: { label: '1 thread', env: {}, threads: 1 },
  adaptive: { label: 'following the free cores (the default of train/generate)', env: {}, adaptive: true },
};

const SPEC = {
  arch: { type: 'string', default: 'small', help: 'network (train --arch)' },
  batch: { type: 'int', default: 32, help: 'images per step at full size' },
  patch: { type: 'int', default: 16, help: 'patch size of every step' },
  steps: { type: 'int', default: 4, help: 'steps per measurement' },
  rounds: { type: 'int', default: 2, help: 'idle/loaded pairs per setting' },
  precision: { type: 'string', default: 'fp32', help: 'fp32 or bf16' },
  settings: { type: 'string', default: Object.keys(SETTINGS).join(','), help: `which of ${Object.keys(SETTINGS).join(', ')}` },
  child: { type: 'string', help: '(internal)' },
} satisfies Record<string, OptionSpec>;

// ---- the measured child: builds the training components, then runs K steps per "run K" line ----

async function childMain(cfg: { arch: string; batch: number; patch: number; precision: string; threads: number; adaptive: boolean }): Promise<void> {
  const { adaptThreads, followFreeCores, setNumThreads } = await import('../src/tensor/index.js');
  const { loadDataset } = await import('../src/data/index.js');
  const { resolveTrainOptions } = await import('../src/train/options.js');
  const { buildComponents } = await import('../src/train/components.js');
  const { trainingStep } = await import('../src/train/step.js');
  if (cfg.adaptive) followFreeCores(cfg.threads, 1000);
  else setNumThreads(cfg.threads);
  const options = resolveTrainOptions({ data: 'fashion-mnist-5k', arch: cfg.arch as 'small', batch: cfg.batch, duration: 1, precision: cfg.precision as 'fp32', device: 'cpu' });
  const c = buildComponents(options, await loadDataset(options.data, { seed: 0 }), 'cpu');
  const step = () => trainingStep({ options, components: c, curNimg: 1e5, totalNimg: 1e6, patchSize: cfg.patch });
  step();
  step();
  console.log('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const k = Number(/^run (\d+)$/.exec(line)?.[1]);
    if (!k) break;
    const times: number[] = [];
    for (let i = 0; i < k; i++) {
      const t0 = performance.now();
      step();
      if (cfg.adaptive) adaptThreads();
      times.push(performance.now() - t0);
    }
    console.log(JSON.stringify(times));
  }
}

// ---- the parent ----------------------------------------------------------------------------

function lines(child: ChildProcess): () => Promise<string> {
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
  child.on('exit', (code) => waiting.splice(0).forEach((w) => w(`exit ${code}`)));
  return () => new Promise((res) => (queue.length ? res(queue.shift()!) : waiting.push(res)));
}

/** A competing process: one thread that never sleeps. */
function startCompetitor(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

benchMain('under-load', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/under-load.js [options]');
  const cfgBase = { arch: opt.str(o, 'arch'), batch: opt.num(o, 'batch'), patch: opt.num(o, 'patch'), precision: opt.str(o, 'precision') };
  const child = opt.strOpt(o, 'child');
  if (child) return childMain(JSON.parse(child));

  const names = opt.str(o, 'settings').split(',').filter(Boolean);
  for (const n of names) if (!SETTINGS[n]) throw new UsageError(`--settings: unknown '${n}'; known: ${Object.keys(SETTINGS).join(', ')}`);
  console.log(formatMachine(machineInfo()));
  console.log(`network ${cfgBase.arch}, patch ${cfgBase.patch}, batch ${cfgBase.batch}, ${cfgBase.precision}; competitor: one busy-loop process\n`);
  const rows: string[][] = [];
  const script = fileURLToPath(import.meta.url);
  for (const name of names) {
    const s = SETTINGS[name]!;
    const threads = s.threads ?? availableParallelism();
    const env = { ...process.env, ...s.env };
    const proc = spawn(process.execPath, [script, '--child', JSON.stringify({ ...cfgBase, threads, adaptive: s.adaptive ?? false })], { stdio: ['pipe', 'pipe', 'inherit'], env });
    const next = lines(proc);
    const ready = await next();
    if (ready !== 'ready') throw new Error(`setting ${name}: the child failed (${ready})`);
    const idle: number[] = [], loaded: number[] = [];
    for (let r = 0; r < opt.num(o, 'rounds'); r++) {
      proc.stdin!.write(`run ${opt.num(o, 'steps')}\n`);
      idle.push(...(JSON.parse(await next()) as number[]));
      const competitor = startCompetitor();
      await new Promise((res) => setTimeout(res, 300));
      proc.stdin!.write(`run ${opt.num(o, 'steps')}\n`);
      loaded.push(...(JSON.parse(await next()) as number[]));
      competitor.kill();
    }
    proc.stdin!.end();
    const mi = median(idle), ml = median(loaded);
    rows.push([s.label, String(threads), mi.toFixed(0), ml.toFixed(0), `${(ml / mi).toFixed(2)}×`, `${Math.max(...loaded).toFixed(0)}`]);
    console.log(`${s.label}: idle ${mi.toFixed(0)} ms/step, loaded ${ml.toFixed(0)} ms/step (${(ml / mi).toFixed(2)}×)`);
  }
  console.log('\n' + formatTable(['setting', 'threads', 'idle ms/step', 'loaded ms/step', 'slowdown', 'worst loaded'], rows));
});
