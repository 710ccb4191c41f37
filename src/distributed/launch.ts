// Starts the ranks of a run on this machine, as torchrun does: N child
// processes of the same command with RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. Rank 0 keeps the
// terminal (its progress bar and log); the others' lines come prefixed with
// "[rank i]". The first rank that fails stops the rest (SIGTERM, then SIGKILL
// after a grace period), and the launcher exits with an error naming it; a
// Ctrl-C is passed to every rank once, so all finish the same step and rank 0
// writes one training state.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

/** How `launchRanks` starts a run's processes on this machine (torchrun's settings). */
export interface LaunchOptions {
  /** Ranks on this machine. */
  nproc: number;
  /** Machines in the run (default 1) and this machine's index. */
  nnodes?: number;
  nodeRank?: number;
  /** Rank 0's machine (default 127.0.0.1) and port (default: a free one when nnodes = 1, else 29500). */
  masterAddr?: string;
  masterPort?: number;
  /** The command each rank runs: a script and its arguments (run with this Node). */
  script: string;
  args: string[];
  /** Seconds between SIGTERM and SIGKILL when stopping the ranks after a failure (torchrun: 30). */
  graceSec?: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

/** Runs the ranks to the end; resolves to the exit code the launcher should give. */
export async function launchRanks(o: LaunchOptions): Promise<number> {
  const nnodes = o.nnodes ?? 1, nodeRank = o.nodeRank ?? 0, nproc = o.nproc;
  if (!Number.isInteger(nproc) || nproc < 1) throw new Error(`--nproc: expected a positive integer, got ${nproc}`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new Error(`--nnodes: expected a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new Error(`--node-rank: expected 0..${nnodes - 1}, got ${nodeRank}`);
  if (nnodes > 1 && !o.masterAddr) throw new Error('--master-addr: required with --nnodes > 1 (the address of the machine with --node-rank 0)');
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (nnodes === 1 ? await freePort() : 29500);
  const worldSize = nnodes * nproc;
  // CPU ranks share the machine's cores; each gets its share unless told otherwise.
  const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));
  const runId = randomUUID();
  const graceMs = (o.graceSec ?? 30) * 1000;

  const children: ChildProcess[] = [];
  let failure: string | null = null;
  let stopping = false;
  let forwarded = 0;
  const exits: Promise<void>[] = [];

  const stopOthers = (except: number) => {
    if (stopping) return;
    stopping = true;
    children.forEach((c, i) => i !== except && c.exitCode === null && c.signalCode === null && c.kill('SIGTERM'));
    setTimeout(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')), graceMs).unref();
  };

  for (let local = 0; local < nproc; local++) {
    const rank = nodeRank * nproc + local;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RANK: String(rank),
      LOCAL_RANK: String(local),
      GROUP_RANK: String(nodeRank),
      ROLE_RANK: String(rank),
      ROLE_NAME: 'default',
      WORLD_SIZE: String(worldSize),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_WORLD_SIZE: String(nnodes),
      ROLE_WORLD_SIZE: String(worldSize),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
      TORCHELASTIC_RUN_ID: runId,
      TORCHELASTIC_RESTART_COUNT: '0',
      TORCHELASTIC_MAX_RESTARTS: '0',
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
      PD_RANK_THREADS: threads,
      PD_LAUNCHER_PID: String(process.pid),
    };
    // Own process group: a terminal's Ctrl-C reaches the launcher only, which passes it on once.
    const child = spawn(process.execPath, [o.script, ...o.args], {
      env,
      detached: true,
      stdio: local === 0 ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    if (local !== 0) {
      for (const [stream, out] of [[child.stdout!, process.stdout], [child.stderr!, process.stderr]] as const)
        createInterface({ input: stream }).on('line', (line) => out.write(`[rank ${rank}] ${line}\n`));
    }
    children.push(child);
    exits.push(
      new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          const clean = code === 0 || (code === 130 && forwarded > 0);
          if (!clean && !failure) {
            failure = `rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)}`;
            if (!stopping) process.stderr.write(`error: ${failure}; stopping the other ranks\n`);
            stopOthers(local);
          } else if (!clean && failure) {
            // How each of the others ended, so a rank that died without a word (a signal) is still named.
            process.stderr.write(`rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)} after the stop\n`);
          }
          resolve();
        });
      }),
    );
  }

  const onSignal = () => {
    forwarded += 1;
    // Passed on as it came, once per signal: the first makes every rank finish its step (rank 0 saves), a second stops them at once.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGINT');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (failure) {
    process.stderr.write(`error: ${failure}\n`);
    return 1;
  }
  return forwarded > 0 ? 130 : 0;
}

/** argv without the launcher's own options (`--nproc 2`, `--nproc=2`, ...). */
export function withoutOptions(argv: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = names.find((n) => a === n || a.startsWith(`${n}=`));
    if (!name) out.push(a);
    else if (a === name) i++; // skip its value
  }
  return out;
}
