// Trains a tiny Patch Diffusion model on the built-in Fashion-MNIST subset for
// a few seconds, then samples four images from its last snapshot into PNGs.
// CI compiles this under `strict` against the packed package and runs it.
//
//   npx tsc && node train-and-sample.js [outdir]
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeEngine, generate, train } from 'patch-diffusion';

const outdir = process.argv[2] ?? 'runs';
console.log(`engine: ${describeEngine()}`);

// 0.0005 Mimg = 500 patch samples: a few seconds on 2 CPU cores.
const run = await train({ data: 'fashion-mnist-5k', arch: 'small', duration: 0.0005, outdir, tick: 0.25, snap: 1, quiet: true, seed: 0 });
if (!run?.lastSnapshot) throw new Error('training wrote no snapshot');
console.log(`trained ${run.runDir}: snapshot ${run.lastSnapshot}`);

const samples = join(run.runDir, 'samples');
await generate({ network: run.lastSnapshot, outdir: samples, seeds: [0, 1, 2, 3], steps: 8, quiet: true });
const pngs = readdirSync(samples).filter((f) => /^\d{6}\.png$/.test(f));
if (pngs.length !== 4) throw new Error(`expected 4 samples in ${samples}, found ${pngs.length}`);
console.log(`sampled ${pngs.length} images into ${samples}`);
