// Memory stays flat over a long training run: 10,000 steps of a tiny model
// (conv → GroupNorm → SiLU → dropout → conv, MSE, gradient scrub, Adam, EMA),
// each step in a scope, printing RSS, the V8 heap, the external memory V8 has
// been told about and the live tensor count every 1,000 steps, then the growth
// from the first report to the last.
//
//   node [--expose-gc] dist/bench/memory.js [--steps 10000] [--every 1000] [--threads 1] [--yield N]
//
// By default the loop never returns to the event loop, like a synchronous
// training loop between snapshots; the addon's handle finalisers are "basic"
// ones that run inside the GC, so they do not wait for the loop to yield.
// `--yield N` awaits setImmediate every N steps all the same, as the trainer does.
import { performance } from 'node:perf_hooks';
import {
  F, Generator, externalMemoryReported, liveTensors, noGrad, ones, sanitizeGradients, scope, setNumThreads, zeroGrad, zeros, type Tensor,
} from '../src/tensor/index.js';
import { Module } from '../src/nn/module.js';
import { Adam, emaUpdate } from '../src/optim/adam.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`memory: --${name} needs a positive integer`);
    process.exit(2);
  }
  return v;
}

class Tiny extends Module {
  readonly w0: Tensor;
  readonly b0: Tensor;
  readonly gw: Tensor;
  readonly gb: Tensor;
  readonly w1: Tensor;
  readonly b1: Tensor;
  constructor(gen: Generator) {
    super();
    this.w0 = this.registerParameter('conv0_weight', gen.randn([8, 3, 3, 3]).mul(0.2));
    this.b0 = this.registerParameter('conv0_bias', zeros([8]));
    this.gw = this.registerParameter('norm_weight', ones([8]));
    this.gb = this.registerParameter('norm_bias', zeros([8]));
    this.w1 = this.registerParameter('conv1_weight', gen.randn([3, 8, 3, 3]).mul(0.1));
    this.b1 = this.registerParameter('conv1_bias', zeros([3]));
  }
  forward(x: Tensor, gen: Generator): Tensor {
    let h = F.conv2d(x, this.w0, this.b0, { padding: 1 });
    h = F.silu(F.groupNorm(h, 4, this.gw, this.gb));
    h = F.dropout(h, 0.1, gen);
    return F.conv2d(h, this.w1, this.b1, { padding: 1 });
  }
}

const MB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

function sample() {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss / MB, heap: m.heapUsed / MB, external: externalMemoryReported() / MB, live: liveTensors() };
}

async function main(): Promise<void> {
  const steps = option('steps', 10_000);
  const yieldEvery = process.argv.includes('--yield') ? option('yield', 100) : 0;
  const every = option('every', 1_000);
  setNumThreads(option('threads', 1)); // a tiny model: more threads only add OpenMP barriers
  const gen = new Generator(0);
  const net = new Tiny(gen);
  const params = net.parameters();
  const ema = params.map((p) => p.detach().clone());
  const adam = new Adam(params, { lr: 1e-3 });
  console.log(`memory benchmark: ${steps} training steps of a ${net.parameterCount()}-parameter conv net on 4×3×8×8 batches, ` +
    (yieldEvery ? `yielding to the event loop every ${yieldEvery} steps` : 'never yielding to the event loop') +
    `${gc ? ' (GC forced before each report)' : ' (run node with --expose-gc to force a GC before each report)'}`);
  console.log('    step   RSS MB   heap MB   external MB   live tensors   ms/step');

  const reports: ReturnType<typeof sample>[] = [];
  let t0 = performance.now();
  let loss = NaN;
  for (let step = 1; step <= steps; step++) {
    loss = scope(() => {
      zeroGrad(params);
      const x = gen.randn([4, 3, 8, 8]);
      const noise = gen.randn([4, 3, 8, 8]).mul(0.5);
      const out = net.forward(x.add(noise), gen);
      const l = out.sub(x).square().mean();
      l.backward();
      sanitizeGradients(params);
      adam.step();
      noGrad(() => emaUpdate(ema, params, 0.99));
      return l.item();
    });
    if (yieldEvery && step % yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
    if (step % every === 0) {
      const s = sample();
      reports.push(s);
      const ms = (performance.now() - t0) / every;
      console.log(`${String(step).padStart(8)} ${s.rss.toFixed(1).padStart(8)} ${s.heap.toFixed(1).padStart(9)} ${s.external.toFixed(2).padStart(13)} ${String(s.live).padStart(14)} ${ms.toFixed(3).padStart(9)}`);
      t0 = performance.now();
    }
  }
  const first = reports[0]!;
  const last = reports.at(-1)!;
  const peakRss = Math.max(...reports.map((r) => r.rss));
  console.log(`growth from step ${every} to ${steps}: RSS ${(last.rss - first.rss).toFixed(1)} MB (peak ${peakRss.toFixed(1)} MB), ` +
    `heap ${(last.heap - first.heap).toFixed(1)} MB, external ${(last.external - first.external).toFixed(2)} MB, live tensors ${last.live - first.live}`);
  const mid = reports[Math.floor((reports.length - 1) / 2)]!;
  const lateGrowth = last.rss - mid.rss;
  const perThousand = (lateGrowth / Math.max(1, (reports.length - 1 - Math.floor((reports.length - 1) / 2)) * every)) * 1000;
  console.log(`second half: RSS ${lateGrowth.toFixed(1)} MB (${perThousand.toFixed(2)} MB per 1,000 steps, ` +
    `${((perThousand * 1024) / 1000).toFixed(2)} KB per step)`);
  console.log(`final loss ${loss.toFixed(5)}`);
  // Flat: no tensor leaks, and RSS settles (allocator noise aside) over the second half.
  const flat = last.live === first.live && lateGrowth < 5;
  console.log(flat ? 'memory is flat' : 'MEMORY GREW');
  adam.dispose();
  net.dispose();
  for (const t of ema) t.dispose();
  if (!flat) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
