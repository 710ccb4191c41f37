// `patch-diffusion info`: what this installation runs on.
import { Command } from 'commander';
import { blasThreads, cudaAvailable, cudaDeviceCount, getNumThreads, parallelInfo, setNumThreads } from '../../tensor/index.js';

export function infoCommand(): Command {
  return new Command('info')
    .description('show the libtorch build, threads and devices')
    .option('--threads <n>', 'intra-op threads (default: all cores)', (v) => Number.parseInt(v, 10))
    .action((opts: { threads?: number }) => {
      setNumThreads(opts.threads);
      console.log(`threads: ${getNumThreads()}`);
      const blas = blasThreads();
      console.log(`OpenBLAS threads: ${blas < 0 ? 'n/a (the BLAS is not OpenBLAS)' : blas}${process.env.OPENBLAS_NUM_THREADS ? ' (from OPENBLAS_NUM_THREADS)' : ''}`);
      console.log(`cuda: ${cudaAvailable() ? `yes (${cudaDeviceCount()} device(s))` : 'no'}`);
      console.log(parallelInfo().trim());
    });
}
