// Encode and decode time of the Stable Diffusion VAE (AutoencoderKL with the
// sd-vae-ft-ema configuration, random weights: the cost does not depend on
// the values) for one image: a warm-up call, then the median of --repeats
// calls of each.
//
//   node dist/bench/autoencoder-kl.js [--resolution 256] [--batch 1] [--repeats 3] [--threads N] [--device cpu] [--seed 0]
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { AutoencoderKL } from '../src/networks/autoencoder-kl.js';
import { Generator, resolveDevice, scope, setNumThreads, type Tensor } from '../src/tensor/index.js';
import { benchMain, formatMachine, machineInfo, median, opt, parseOptions, peakRssMb, positiveInt, type OptionSpec } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  resolution: { type: 'int', default: 256, help: 'image side (a multiple of 8)' },
  batch: { type: 'int', default: 1, help: 'images per call' },
  repeats: { type: 'int', default: 3, help: 'timed calls of each (after one warm-up call)' },
  threads: { type: 'int', default: availableParallelism(), help: 'intra-op threads' },
  device: { type: 'string', default: 'cpu', help: 'cpu, cuda, cuda:N or auto' },
  seed: { type: 'int', default: 0, help: 'seed of the random weights and inputs' },
};

benchMain('autoencoder-kl', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/autoencoder-kl.js [options]');
  const res = positiveInt(opt.num(o, 'resolution'), '--resolution');
  const batch = positiveInt(opt.num(o, 'batch'), '--batch');
  const repeats = positiveInt(opt.num(o, 'repeats'), '--repeats');
  setNumThreads(positiveInt(opt.num(o, 'threads'), '--threads'));
  const device = resolveDevice(opt.str(o, 'device'));
  console.log(formatMachine(machineInfo()));

  const g = new Generator(opt.num(o, 'seed'));
  let t = performance.now();
  const vae = new AutoencoderKL({ generator: g }).to({ device });
  console.log(`AutoencoderKL (sd-vae-ft-ema config, ${vae.parameterCount().toLocaleString('en')} parameters, random weights) built in ${((performance.now() - t) / 1000).toFixed(1)} s on ${device}`);

  const time = (fn: () => Tensor): number =>
    scope(() => {
      const start = performance.now();
      fn().toArray().length; // reading back waits for the device
      return performance.now() - start;
    });
  const x = g.rand([batch, 3, res, res], { device }).mul(2).sub(1);
  const z = g.randn([batch, 4, res / 8, res / 8], { device });
  const encodeMs: number[] = [];
  const decodeMs: number[] = [];
  for (let i = 0; i <= repeats; i++) {
    const e = time(() => vae.encode(x).mean);
    const d = time(() => vae.decode(z));
    if (i > 0) {
      encodeMs.push(e);
      decodeMs.push(d);
    } else console.log(`warm-up: encode ${e.toFixed(0)} ms, decode ${d.toFixed(0)} ms`);
  }
  const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${xs.map((v) => v.toFixed(0)).join(', ')})`;
  console.log(`${batch}×3×${res}×${res} → ${batch}×4×${res / 8}×${res / 8}: encode ${fmt(encodeMs)}`);
  console.log(`${batch}×4×${res / 8}×${res / 8} → ${batch}×3×${res}×${res}: decode ${fmt(decodeMs)}`);
  console.log(`peak RSS ${peakRssMb().toFixed(0)} MiB`);
  vae.dispose();
});
