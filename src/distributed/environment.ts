// The rank's place in a multi-process run, read from torchrun's environment
// (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
// plus TORCHELASTIC_USE_AGENT_STORE / TORCHELASTIC_RESTART_COUNT when torchrun's
// agent hosts the store). Our own launcher (launch.ts) sets the same variables,
// so a rank cannot tell, and need not know, who started it.

/** A rank's place in a multi-process run, as torchrun (or our launcher) sets it in the environment. */
export interface RankEnvironment {
  rank: number;
  localRank: number;
  worldSize: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** torchrun's agent hosts the TCPStore: every rank, rank 0 too, is a client. */
  agentStore: boolean;
  restartCount: number;
  /** GLOO_SOCKET_IFNAME: the network interface Gloo binds to ('' for automatic). */
  glooInterface: string;
}

/** The threads our launcher gave this rank (its share of the machine's cores), if it started it. */
export function launcherThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const n = Number(env.PD_RANK_THREADS);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Our launcher is gone (killed): its ranks stop cleanly instead of training on as orphans. */
export function launcherGone(env: NodeJS.ProcessEnv = process.env): boolean {
  const pid = env.PD_LAUNCHER_PID;
  return pid !== undefined && pid !== '' && process.ppid !== Number(pid);
}

const NAMES = ['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number | null, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback === null) throw new Error(`environment: ${name} is not set (a multi-process run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)`);
    return fallback;
  }
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new Error(`environment: ${name}=${JSON.stringify(text)} is not an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}`);
  return n;
}

/**
 * The rank's environment, or null for a single-process run (no WORLD_SIZE, or
 * WORLD_SIZE=1 with no other torchrun variable). Contradictions (RANK ≥
 * WORLD_SIZE, a port out of range, half of the variables) are errors naming
 * the variable and its value, raised before any work starts.
 */
export function readRankEnvironment(env: NodeJS.ProcessEnv = process.env): RankEnvironment | null {
  const present = NAMES.filter((n) => env[n] !== undefined && env[n] !== '');
  if (present.length === 0) return null;
  const worldSize = integer(env, 'WORLD_SIZE', null, 1);
  const rank = integer(env, 'RANK', null, 0);
  if (rank >= worldSize) throw new Error(`environment: RANK=${rank} must be less than WORLD_SIZE=${worldSize}`);
  const localWorldSize = integer(env, 'LOCAL_WORLD_SIZE', worldSize, 1, worldSize);
  const localRank = integer(env, 'LOCAL_RANK', rank % localWorldSize, 0);
  if (localRank >= localWorldSize) throw new Error(`environment: LOCAL_RANK=${localRank} must be less than LOCAL_WORLD_SIZE=${localWorldSize}`);
  const masterAddr = (env.MASTER_ADDR ?? '').trim() || (worldSize === 1 ? '127.0.0.1' : '');
  if (!masterAddr) throw new Error('environment: MASTER_ADDR is not set (the address of the machine running rank 0)');
  const masterPort = integer(env, 'MASTER_PORT', worldSize === 1 ? 29500 : null, 1, 65535);
  return {
    rank,
    localRank,
    worldSize,
    localWorldSize,
    masterAddr,
    masterPort,
    agentStore: /^(1|true)$/i.test(env.TORCHELASTIC_USE_AGENT_STORE ?? ''),
    restartCount: integer(env, 'TORCHELASTIC_RESTART_COUNT', 0, 0),
    glooInterface: (env.GLOO_SOCKET_IFNAME ?? '').split(',')[0]!.trim(),
  };
}
