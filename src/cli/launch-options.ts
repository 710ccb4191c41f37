// The launcher's options, shared by `train` and `generate`: with --nproc N
// (and, across machines, --nnodes/--node-rank/--master-addr/--master-port)
// the command starts N ranks of itself on this machine (src/distributed/launch.ts)
// instead of running in this process. A process that already is a rank
// (RANK set by torchrun or by our launcher) runs as that rank.
import type { Command } from 'commander';
import { launchRanks, withoutOptions } from '../distributed/launch.js';
import { parseNumber as num } from './parse.js';

const LAUNCH_FLAGS = ['--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

export function addLaunchOptions(cmd: Command): Command {
  return cmd
    .option('--nproc <n>', 'data-parallel: start n processes on this machine (Gloo on CPU), like torchrun --nproc_per_node', num)
    .option('--nnodes <n>', 'data-parallel across machines: number of machines, each running this command with --nproc (default 1)', num)
    .option('--node-rank <i>', 'this machine\'s index, 0..nnodes−1 (0 hosts the rendezvous)', num)
    .option('--master-addr <host>', 'address of the machine with --node-rank 0 (default 127.0.0.1)')
    .option('--master-port <port>', 'rendezvous port on that machine (default: a free one on a single machine, else 29500)', num);
}

/**
 * When the flags ask for several processes, runs them and returns the exit
 * code to give; null when this process should do the work itself.
 */
export async function launchIfAsked(flags: Record<string, unknown>): Promise<number | null> {
  const nproc = flags.nproc as number | undefined, nnodes = flags.nnodes as number | undefined;
  if (nproc === undefined && nnodes === undefined) return null;
  if (process.env.RANK !== undefined && process.env.RANK !== '')
    throw new Error(`--nproc/--nnodes given to a process that already is rank ${process.env.RANK} (started by torchrun or another launcher): drop them`);
  if ((nproc ?? 1) === 1 && (nnodes ?? 1) === 1) return null;
  return launchRanks({
    nproc: nproc ?? 1,
    nnodes,
    nodeRank: flags.nodeRank as number | undefined,
    masterAddr: flags.masterAddr as string | undefined,
    masterPort: flags.masterPort as number | undefined,
    script: process.argv[1]!,
    args: withoutOptions(process.argv.slice(2), LAUNCH_FLAGS),
  });
}
