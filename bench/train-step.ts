// One training step of a small conv stack through the TypeScript API, next to
// the same network written directly in C++ against libtorch
// (bench/native/conv_stack.cc), in one run: warm-up, then blocks of steps
// interleaved A/B/B/A/A/B… so that drift and background load hit both alike.
// Prints ms/step, images/s and the binding's overhead; then the per-call cost
// of a tiny op through the binding and in C++.
//
//   node dist/bench/train-step.js [--threads N] [--rounds R] [--block K] [--warmup W]
//        [--batch 16] [--channels 64] [--layers 9] [--res 32] [--groups 16] [--tiny 100000] [--no-native]
//
// The C++ twin is built by bench/build-native.sh on first use (about 30 s).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import {
  F, Generator, blasThreads, cpuCacheStats, getNumThreads, liveTensors, ones, parallelInfo, scope, setNumThreads, zeroGrad, zeros, type Tensor,
} from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import { Module } from '../src/nn/module.js';
import { Adam } from '../src/optim/adam.js';

// ---- options -------------------------------------------------------------------------

function parseArgs(argv: string[]) {
  const o = {
    threads: availableParallelism(), rounds: 4, block: 3, warmup: 2,
    batch: 16, channels: 64, layers: 9, res: 32, groups: 16, tiny: 100_000, native: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--no-native') {
      o.native = false;
      continue;
    }
    const key = a.replace(/^--/, '') as keyof typeof o;
    const value = Number(argv[++i]);
    if (!(key in o) || key === 'native' || !Number.isInteger(value) || value < 0) {
      console.error(`train-step: bad option ${a} ${argv[i] ?? ''}`);
      process.exit(2);
    }
    (o as Record<string, number | boolean>)[key] = value;
  }
  return o;
}

// ---- the network, through the TypeScript API ----------------------------------------------

class ConvStack extends Module {
  readonly layers: { w: Tensor; b: Tensor; gw: Tensor; gb: Tensor }[] = [];
  readonly outW: Tensor;
  readonly outB: Tensor;
  readonly groups: number;

  constructor(o: { layers: number; channels: number; groups: number }, inChannels: number, outChannels: number, gen: Generator) {
    super();
    for (let l = 0; l < o.layers; l++) {
      const cin = l === 0 ? inChannels : o.channels;
      this.layers.push({
        w: this.registerParameter(`conv${l}_weight`, gen.randn([o.channels, cin, 3, 3]).mul(Math.sqrt(1 / (cin * 9)))),
        b: this.registerParameter(`conv${l}_bias`, zeros([o.channels])),
        gw: this.registerParameter(`norm${l}_weight`, ones([o.channels])),
        gb: this.registerParameter(`norm${l}_bias`, zeros([o.channels])),
      });
    }
    this.outW = this.registerParameter('out_weight', gen.randn([outChannels, o.channels, 3, 3]).mul(Math.sqrt(1 / (o.channels * 9))));
    this.outB = this.registerParameter('out_bias', zeros([outChannels]));
    this.groups = o.groups;
  }

  forward(x: Tensor): Tensor {
    for (const { w, b, gw, gb } of this.layers) {
      x = F.conv2d(x, w, b, { padding: 1 });
      x = F.groupNorm(x, this.groups, gw, gb, 1e-5);
      x = F.silu(x);
    }
    return F.conv2d(x, this.outW, this.outB, { padding: 1 });
  }
}

// ---- the C++ twin, driven over a pipe -----------------------------------------------------

class NativeTwin {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  constructor(binary: string, args: string[]) {
    this.#child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (d: Buffer) => process.stderr.write(`[conv_stack] ${d}`));
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  async #next(): Promise<string> {
    const r = await this.#lines.next();
    if (r.done) throw new Error('conv_stack exited unexpectedly');
    return r.value;
  }
  async ready(): Promise<string> {
    return this.#next();
  }
  async ask(command: string, expect: string): Promise<number> {
    return (await this.askAll(command, expect))[0]!;
  }
  async askAll(command: string, expect: string): Promise<number[]> {
    this.#child.stdin.write(`${command}\n`);
    const line = await this.#next();
    const [tag, ...values] = line.split(' ');
    if (tag !== expect) throw new Error(`conv_stack: expected '${expect} …', got '${line}'`);
    return values.map(Number);
  }
  quit(): void {
    this.#child.stdin.end('quit\n');
  }
}

function nativeBinary(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
  const root = join(here, '..', '..');
  const source = join(root, 'bench', 'native', 'conv_stack.cc');
  const binary = join(root, 'bench', 'native', 'build', 'conv_stack');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    console.log('building bench/native/conv_stack (about 30 s)…');
    const r = spawnSync('bash', [join(root, 'bench', 'build-native.sh')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('bench/build-native.sh failed');
  }
  return binary;
}

// ---- statistics ---------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x: number, d = 1) => x.toFixed(d);

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  setNumThreads(o.threads);
  const inChannels = 5;
  const outChannels = 3;
  const flops =
    2 * o.batch * o.res * o.res * 9 * (inChannels * o.channels + (o.layers - 1) * o.channels * o.channels + o.channels * outChannels) * 3; // fwd + 2× bwd
  console.log(`train-step benchmark: batch ${o.batch} × ${inChannels} × ${o.res} × ${o.res}, ${o.layers} 3×3 convs of ${o.channels} channels ` +
    `(GroupNorm ${o.groups} groups, SiLU), conv to ${outChannels}, MSE, Adam; ${getNumThreads()} threads; ≈ ${fmt(flops / 1e9, 1)} GFLOP/step`);
  const cache = cpuCacheStats();
  console.log(`  TypeScript side: OpenBLAS threads ${blasThreads()}; caching CPU allocator ${cache.enabled ? `on (cap ${cache.capBytes / 2 ** 20} MiB; ` +
    'the C++ twin uses c10\'s default allocator: PD_CPU_CACHE_MB=0 compares like with like)' : 'off'}`);
  console.log(parallelInfo().split('\n').filter((l) => /get_num_threads|OpenMP|MKL|DNN/.test(l)).map((l) => `  ${l.trim()}`).join('\n'));

  const gen = new Generator(0);
  const net = new ConvStack(o, inChannels, outChannels, gen);
  const params = net.parameters();
  const adam = new Adam(params, { lr: 1e-4 });
  const x = gen.randn([o.batch, inChannels, o.res, o.res]);
  const target = gen.randn([o.batch, outChannels, o.res, o.res]);
  let lastLoss = NaN;
  const tsStep = () =>
    scope(() => {
      zeroGrad(params);
      const loss = net.forward(x).sub(target).square().mean();
      loss.backward();
      adam.step();
      lastLoss = loss.item();
    });
  /** Wall and process CPU milliseconds (user + system, all threads) of k steps. */
  const tsBlock = (k: number): [number, number] => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < k; i++) tsStep();
    const c = process.cpuUsage(c0);
    return [performance.now() - t0, (c.user + c.system) / 1000];
  };

  let twin: NativeTwin | undefined;
  if (o.native) {
    twin = new NativeTwin(nativeBinary(), ['--threads', String(o.threads), '--batch', String(o.batch), '--channels', String(o.channels),
      '--layers', String(o.layers), '--res', String(o.res), '--groups', String(o.groups)]);
    console.log(`C++ twin: ${await twin.ready()}`);
  }

  // Warm-up (oneDNN primitive caches, allocator, JIT).
  tsBlock(o.warmup);
  if (twin) await twin.ask(`run ${o.warmup}`, 'ms');

  const ts = { wall: [] as number[], cpu: [] as number[] };
  const cpp = { wall: [] as number[], cpu: [] as number[] };
  const live0 = liveTensors();
  for (let r = 0; r < o.rounds; r++) {
    // A B, then B A: each side runs first in half the rounds.
    const order = r % 2 === 0 ? ['ts', 'cpp'] : ['cpp', 'ts'];
    for (const side of order) {
      const [wall, cpu] = side === 'ts' ? tsBlock(o.block) : twin ? await twin.askAll(`run ${o.block}`, 'ms') : [NaN, NaN];
      if (side === 'ts' || twin) {
        const into = side === 'ts' ? ts : cpp;
        into.wall.push(wall! / o.block);
        into.cpu.push(cpu! / o.block);
      }
    }
    console.log(`  round ${r + 1}/${o.rounds}: TypeScript ${fmt(ts.wall.at(-1)!)} ms/step (CPU ${fmt(ts.cpu.at(-1)!)} ms)` +
      (twin ? `, C++ ${fmt(cpp.wall.at(-1)!)} ms/step (CPU ${fmt(cpp.cpu.at(-1)!)} ms)` : ''));
  }
  if (liveTensors() !== live0) console.log(`  warning: live tensors changed during the run (${live0} → ${liveTensors()})`);

  const report = (name: string, t: { wall: number[]; cpu: number[] }) => {
    const m = median(t.wall);
    console.log(`${name.padEnd(12)} wall: median ${fmt(m)} ms/step, mean ${fmt(mean(t.wall))}, min ${fmt(Math.min(...t.wall))}  →  ` +
      `${fmt((o.batch * 1000) / m)} images/s (best ${fmt((o.batch * 1000) / Math.min(...t.wall))}), ${fmt(flops / (m / 1000) / 1e9)} GFLOP/s; ` +
      `CPU: median ${fmt(median(t.cpu))} ms/step`);
    return m;
  };
  console.log(`\nresults over ${o.rounds} interleaved blocks of ${o.block} steps (after ${o.warmup} warm-up steps), ${getNumThreads()} threads:`);
  report('TypeScript', ts);
  console.log(`  TypeScript final loss ${lastLoss.toFixed(5)}`);
  if (twin) {
    report('C++ libtorch', cpp);
    console.log(`  C++ final loss ${(await twin.ask('loss', 'loss')).toFixed(5)} (same seed and ops: must equal the TypeScript loss)`);
    const sign = (p: number) => `${p >= 0 ? '+' : ''}${fmt(p)}%`;
    const overheads = (a: number[], b: number[]) => {
      const pairwise = a.map((t, k) => ((t - b[k]!) / b[k]!) * 100);
      return { ofMedians: ((median(a) - median(b)) / median(b)) * 100, pairwise, ofMins: ((Math.min(...a) - Math.min(...b)) / Math.min(...b)) * 100 };
    };
    const w = overheads(ts.wall, cpp.wall);
    const c = overheads(ts.cpu, cpp.cpu);
    console.log(`binding overhead (target < 5%):`);
    console.log(`  wall time: ${sign(w.ofMedians)} (medians), ${sign(median(w.pairwise))} (median per-round ratio), ${sign(w.ofMins)} (best blocks)`);
    console.log(`  CPU time:  ${sign(c.ofMedians)} (medians), ${sign(median(c.pairwise))} (median per-round ratio), ${sign(c.ofMins)} (best blocks)`);
    console.log(`  per-round wall: ${w.pairwise.map(sign).join(' ')}`);
  }

  // Per-call overhead of a tiny op: add of two 1-element tensors.
  const a = ones([1]);
  const b = ones([1]);
  const n = o.tiny;
  const tiny = () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) native.dispose(native.add(a.handle, b.handle, 1));
    return ((performance.now() - t0) * 1000) / n;
  };
  const tinyTensor = () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) a.add(b).dispose();
    return ((performance.now() - t0) * 1000) / n;
  };
  const tinyScope = () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) scope(() => void a.add(b));
    return ((performance.now() - t0) * 1000) / n;
  };
  const floor = () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) native.getNumThreads();
    return ((performance.now() - t0) * 1000) / n;
  };
  tiny();
  tinyTensor(); // warm-up
  const rawUs = median([tiny(), tiny(), tiny()]);
  const tensorUs = median([tinyTensor(), tinyTensor(), tinyTensor()]);
  const scopeUs = median([tinyScope(), tinyScope(), tinyScope()]);
  const floorUs = median([floor(), floor(), floor()]);
  console.log(`\ntiny op (add of two 1-element tensors, ${n} calls):`);
  console.log(`  Tensor.add + dispose        ${fmt(tensorUs, 2)} µs/call`);
  console.log(`  inside a scope per call     ${fmt(scopeUs, 2)} µs/call`);
  console.log(`  native.add + native.dispose ${fmt(rawUs, 2)} µs/call`);
  console.log(`  an empty N-API call         ${fmt(floorUs, 3)} µs/call`);
  if (twin) {
    await twin.ask(`tiny ${n}`, 'us');
    const cppUs = median([await twin.ask(`tiny ${n}`, 'us'), await twin.ask(`tiny ${n}`, 'us'), await twin.ask(`tiny ${n}`, 'us')]);
    console.log(`  at::add in C++              ${fmt(cppUs, 2)} µs/call  →  binding overhead ≈ ${fmt(tensorUs - cppUs, 2)} µs/call`);
    twin.quit();
  }
  a.dispose();
  b.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
