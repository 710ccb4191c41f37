// `patch-diffusion info`: what this installation runs on.
import { Command } from 'commander';
import { addonInPlace } from '../../setup/addon.js';
import { locateLibtorch } from '../../setup/libtorch.js';
import { collectiveBackends } from '../../tensor/collectives.js';
import { addonReady } from '../../tensor/native.js';
import {
  blasThreads, cpuCacheStats, cudaAvailable, cudaBuild, cudaDevices, cudaUnavailableReason, describeCudaDevice, engineInfo, getNumThreads,
  maxThreads, parallelInfo, setNumThreads,
} from '../../tensor/index.js';
import { parseIntIn } from '../parse.js';

/**
 * The `cuda:` lines of `info`: the kind of build, and the GPUs it sees (one
 * line each) or why it sees none. A CUDA build on a machine without a GPU
 * says so instead of failing.
 */
export function describeCuda(): string[] {
  if (!cudaBuild()) return ['cuda: no (CPU build: the addon was compiled against a CPU-only libtorch)'];
  const version = engineInfo().cuda;
  const kind = `CUDA build${version ? ` (CUDA ${version})` : ''}`;
  if (!cudaAvailable()) return [`cuda: ${kind}, no device: ${cudaUnavailableReason() ?? 'CUDA reports no GPU'}`];
  const devices = cudaDevices();
  return [`cuda: ${kind}, ${devices.length} device(s)`, ...devices.map((d) => `  ${describeCudaDevice(d)}`)];
}

export function infoCommand(): Command {
  return new Command('info')
    .description('show the libtorch build, threads and devices')
    .option('--threads <n>', 'intra-op threads (default: all cores)', parseIntIn(1, maxThreads()))
    .action((opts: { threads?: number }) => {
      const addon = addonReady();
      if (!addon.ready) {
        // Without the addon: what is missing, and what `setup` would use.
        console.log(`engine: not set up. ${addon.error.message.replace(/^patch-diffusion: /, '')}`);
        const found = locateLibtorch();
        console.log(found.found ? `libtorch that setup would use: ${found.version ?? ''} (${found.source})` : `libtorch: none found (${found.why}); setup fetches PyTorch's CPU wheel`);
        return;
      }
      const record = addonInPlace();
      if (record) console.log(`addon: ${record.origin} against libtorch ${record.libtorch.version ?? ''} in ${record.libtorch.libdir}`);
      setNumThreads(opts.threads);
      const e = engineInfo();
      console.log(`libtorch: ${e.version}${e.library ? ` (${e.library})` : ''}`);
      console.log(`BLAS: ${e.blas}; oneDNN: ${e.onednn ?? 'none'}; ATen kernels: ${e.atenCapability}`);
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      console.log(`CPU: ${e.cpuModel}; AVX-512 ${yes(e.avx512)}, AVX512-BF16 ${yes(e.avx512Bf16)}, AMX-BF16 ${yes(e.amxBf16)}, AVX512-FP16 ${yes(e.avx512Fp16)}, AMX-FP16 ${yes(e.amxFp16)}`);
      console.log(`threads: ${getNumThreads()}`);
      const blas = blasThreads();
      console.log(`OpenBLAS threads: ${blas < 0 ? 'n/a (the BLAS is not OpenBLAS)' : blas}${process.env.OPENBLAS_NUM_THREADS ? ' (from OPENBLAS_NUM_THREADS)' : ''}`);
      const cache = cpuCacheStats();
      console.log(`CPU tensor cache: ${cache.enabled ? `on, up to ${cache.capBytes / 2 ** 20} MiB idle (PD_CPU_CACHE_MB)` : 'off'}`);
      for (const line of describeCuda()) console.log(line);
      const backends = collectiveBackends();
      console.log(`multi-process training (c10d): ${backends.length ? backends.join(', ') : 'no (gloo\'s headers were missing at build time: apt-get install libgloo-dev, then npx patch-diffusion setup --rebuild)'}`);
      console.log(parallelInfo().trim());
    });
}
