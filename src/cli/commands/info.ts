// `patch-diffusion info`: what this installation runs on.
import { Command } from 'commander';
import { cudaAvailable, cudaDeviceCount, getNumThreads, parallelInfo, setNumThreads } from '../../tensor/index.js';

export function infoCommand(): Command {
  return new Command('info')
    .description('show the libtorch build, threads and devices')
    .option('--threads <n>', 'intra-op threads (default: all cores)', (v) => Number.parseInt(v, 10))
    .action((opts: { threads?: number }) => {
      setNumThreads(opts.threads);
      console.log(`threads: ${getNumThreads()}`);
      console.log(`cuda: ${cudaAvailable() ? `yes (${cudaDeviceCount()} device(s))` : 'no'}`);
      console.log(parallelInfo().trim());
    });
}
