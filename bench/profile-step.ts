// Where the time of one training step goes: runs the real training step
// (src/train/step.ts) of a network on a built-in data set at fixed patch
// sizes, times every libtorch op it calls (src/tensor/profiler.ts), and prints
// per patch size the wall time per step and its split into op families —
// convolutions forward and backward, attention, linear layers, norms,
// elementwise work, optimizer, EMA — plus what the ops do not cover (JS, data,
// the binding), and the busiest ops. With --flops (GFLOP per step for each
// patch size, e.g. from bench/peer/flops.py) it prints the achieved GFLOP/s.
//
//   node dist/bench/profile-step.js [--arch small] [--data fashion-mnist-5k] [--batch 32]
//        [--patches 8,16,32] [--steps 4] [--warmup 2] [--threads N] [--precision fp32|bf16]
//        [--channels-last] [--top 12] [--flops 8:x,16:y,32:z] [--json FILE]
import { performance } from 'node:perf_hooks';
import { loadDataset } from '../src/data/index.js';
import { resolveTrainOptions } from '../src/train/options.js';
import { buildComponents } from '../src/train/components.js';
import { trainingStep } from '../src/train/step.js';
import { PRECISIONS, type Precision } from '../src/nn/precision.js';
import { describeEngine, getNumThreads, opFamilies, profileOps, setNumThreads, type OpTiming } from '../src/tensor/index.js';
import { benchMain, formatMachine, formatTable, opt, machineInfo, parseOptions, UsageError, writeJsonRecord, type OptionSpec } from './common.js';

const USAGE = 'node dist/bench/profile-step.js [options]';
const SPEC = {
  arch: { type: 'string', default: 'small', help: 'network (train --arch)' },
  data: { type: 'string', default: 'fashion-mnist-5k', help: 'data set (train --data)' },
  batch: { type: 'int', default: 32, help: 'images per step at full size (batch_mul more at smaller patches)' },
  patches: { type: 'ints', default: [8, 16, 32], help: 'patch sizes to profile, one at a time' },
  steps: { type: 'int', default: 4, help: 'profiled steps per patch size' },
  warmup: { type: 'int', default: 2, help: 'unprofiled steps first' },
  threads: { type: 'int', help: 'intra-op threads (default: all cores)' },
  precision: { type: 'string', default: 'fp32', help: `one of ${PRECISIONS.join(', ')}` },
  channelsLast: { type: 'boolean', default: false, help: 'channels-last activations' },
  top: { type: 'int', default: 12, help: 'busiest ops to list' },
  flops: { type: 'string', help: 'GFLOP per step by patch size, "8:1.9,16:3.9,32:7.9"' },
  json: { type: 'string', help: 'write the figures as JSON here' },
} satisfies Record<string, OptionSpec>;

interface PatchProfile {
  patch: number;
  images: number;
  wallMs: number;
  opsMs: number;
  families: { family: string; ms: number; calls: number }[];
  top: OpTiming[];
  gflopPerStep: number | null;
}

function parseFlops(text: string | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const [k, v] = part.split(':').map(Number);
    if (!Number.isInteger(k) || !(v! > 0)) throw new UsageError(`--flops: '${part}' is not patch:GFLOP`);
    out.set(k!, v!);
  }
  return out;
}

benchMain('profile-step', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, USAGE);
  const precision = opt.str(o, 'precision') as Precision;
  if (!PRECISIONS.includes(precision)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  const flops = parseFlops(opt.strOpt(o, 'flops'));
  setNumThreads(opt.numOpt(o, 'threads'));
  const options = resolveTrainOptions({
    data: opt.str(o, 'data'), arch: opt.str(o, 'arch') as 'small', batch: opt.num(o, 'batch'), duration: 1,
    precision, channelsLast: opt.bool(o, 'channelsLast'), device: 'cpu',
  });
  const dataset = await loadDataset(options.data, { seed: 0 });
  const c = buildComponents(options, dataset, 'cpu');
  console.log(formatMachine(machineInfo()));
  console.log(`engine: ${describeEngine()}`);
  console.log(`network ${options.arch} (${c.net.parameterCount().toLocaleString('en-US')} parameters), ${dataset.name} ${dataset.resolution}×${dataset.resolution}×${dataset.channels}, ` +
    `batch ${options.batch}, ${getNumThreads()} threads, precision ${precision}${options.channelsLast ? ', channels-last' : ''}\n`);

  const totalNimg = 1e6;
  const results: PatchProfile[] = [];
  for (const patch of opt.list(o, 'patches')) {
    if (!c.patches.patchSizes.includes(patch)) throw new UsageError(`--patches: ${patch} is not one of this schedule's sizes ${c.patches.patchSizes.join('/')}`);
    const step = () => trainingStep({ options, components: c, curNimg: 1e5, totalNimg, patchSize: patch });
    for (let k = 0; k < opt.num(o, 'warmup'); k++) step();
    const steps = opt.num(o, 'steps');
    const t0 = performance.now();
    const { ops } = profileOps(() => {
      for (let k = 0; k < steps; k++) step();
    });
    const wallMs = (performance.now() - t0) / steps;
    const perStep = ops.map((op) => ({ ...op, calls: op.calls / steps, totalMs: op.totalMs / steps, selfMs: op.selfMs / steps }));
    const opsMs = perStep.reduce((a, op) => a + op.selfMs, 0);
    results.push({
      patch, images: options.batch * c.patches.batchMul(patch), wallMs, opsMs,
      families: opFamilies(perStep), top: [...perStep].sort((a, b) => b.selfMs - a.selfMs).slice(0, opt.num(o, 'top')),
      gflopPerStep: flops.get(patch) ?? null,
    });
  }

  for (const r of results) {
    const gf = r.gflopPerStep ? `, ${r.gflopPerStep.toFixed(2)} GFLOP/step → ${(r.gflopPerStep / (r.wallMs / 1000)).toFixed(1)} GFLOP/s` : '';
    console.log(`== patch ${r.patch}×${r.patch}, ${r.images} images: ${r.wallMs.toFixed(1)} ms/step${gf}`);
    const rows = r.families.map((f) => [f.family, f.ms.toFixed(1), `${((100 * f.ms) / r.wallMs).toFixed(1)}%`, f.calls.toFixed(0)]);
    rows.push(['not in ops (JS, data, binding)', (r.wallMs - r.opsMs).toFixed(1), `${((100 * (r.wallMs - r.opsMs)) / r.wallMs).toFixed(1)}%`, '']);
    console.log(formatTable(['family', 'ms/step', 'share', 'calls/step'], rows));
    console.log(formatTable(['op (self time)', 'ms/step', 'calls/step'], r.top.map((t) => [t.name, t.selfMs.toFixed(2), t.calls.toFixed(0)])));
    console.log('');
  }
  writeJsonRecord(opt.strOpt(o, 'json'), { machine: machineInfo(), engine: describeEngine(), precision, channelsLast: options.channelsLast, results });
});
