// A rank's membership in a data-parallel run: joining (with the checks that
// must fail before any work: a name that does not resolve, a port already in
// use), and the collectives training needs, each failing with an error that
// names this rank and says what probably happened to the others.
import { lookup } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import {
  allreduceSum, averageGradients, awaitGradients, backwardOverlapped, barrier, broadcast, collectiveBackends, collectivesAvailable, joinProcessGroup,
  type CollectiveBackend, type OverlapReport,
} from '../tensor/collectives.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { cudaAvailable, cudaDeviceCount, describeEngine } from '../tensor/runtime.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { readRankEnvironment, type RankEnvironment } from './environment.js';

/** DDP's default bucket size (kDefaultBucketBytesCap); PD_DIST_BUCKET_MB changes it. */
const BUCKET_BYTES = 25 * 2 ** 20;
/** DDP's first bucket (_DEFAULT_FIRST_BUCKET_BYTES): small, so that the first all-reduce starts early in backward. */
const FIRST_BUCKET_BYTES = 2 ** 20;

/**
 * How the gradients are averaged: PD_DIST_OVERLAP=1 (the default) all-reduces
 * them bucket by bucket during the last round's backward, as DDP does;
 * PD_DIST_OVERLAP=0 after backward, all at once (to compare). PD_DIST_BUCKET_MB
 * (default 25) caps a bucket.
 */
export function gradientSyncSettings(env: NodeJS.ProcessEnv): { overlap: boolean; bucketBytes: number } {
  const text = env.PD_DIST_OVERLAP ?? '';
  if (!['', '0', '1'].includes(text)) throw new Error(`environment: PD_DIST_OVERLAP=${JSON.stringify(text)} must be 0 (all-reduce after backward) or 1 (overlapped with backward, the default)`);
  const mb = env.PD_DIST_BUCKET_MB ?? '';
  const cap = mb === '' ? BUCKET_BYTES : Number(mb) * 2 ** 20;
  if (!Number.isFinite(cap) || cap < 1) throw new Error(`environment: PD_DIST_BUCKET_MB=${JSON.stringify(mb)} must be a positive number of MiB`);
  return { overlap: text !== '0', bucketBytes: Math.round(cap) };
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new Error(`environment: ${name}=${JSON.stringify(text)} must be a positive number of seconds`);
  return s;
}

const isLoopback = (addr: string) => addr.startsWith('127.') || addr === '::1';

/** The local address this machine uses to reach `addr` (no packet is sent). */
async function localAddressToward(addr: string): Promise<string> {
  const socket = createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, addr, () => resolve());
    });
    return socket.address().address;
  } finally {
    socket.close();
  }
}

async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' || err.code === 'EACCES'));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/**
 * The backend a rank joins with: PD_DIST_BACKEND (gloo, nccl or auto, the
 * default). auto takes NCCL where the build has it, a GPU is visible and the
 * run does not ask for the CPU (`deviceHint`, the --device given, if any);
 * else Gloo. Either backend takes tensors on any device (native/dist.cc
 * copies them to its own and back), so the choice is about speed.
 */
export function chooseBackend(vars: NodeJS.ProcessEnv, deviceHint: string | undefined): CollectiveBackend {
  const have = collectiveBackends();
  const asked = vars.PD_DIST_BACKEND || 'auto';
  if (asked === 'gloo' || asked === 'nccl') {
    if (!have.includes(asked))
      throw new Error(`PD_DIST_BACKEND=${asked}: this build has ${have.length ? have.join(' and ') : 'no process-group backend'}` +
        (asked === 'nccl' ? ' (NCCL needs the addon built against a CUDA libtorch with NCCL\'s headers: see README, "On a GPU")' : ''));
    return asked;
  }
  if (asked !== 'auto') throw new Error(`PD_DIST_BACKEND=${JSON.stringify(asked)}: expected gloo, nccl or auto`);
  if (have.includes('nccl') && cudaAvailable() && deviceHint !== 'cpu') return 'nccl';
  return have.includes('gloo') ? 'gloo' : 'nccl';
}

/**
 * This rank's membership in a data-parallel run, and the collectives training needs; each failure names the
 * rank and what probably happened to the others.
 */
export class ProcessGroup {
  /** Whether the last round's backward starts the all-reduce (PD_DIST_OVERLAP; a benchmark may switch it between steps). */
  overlap: boolean;
  readonly bucketBytes: number;
  /** The parameters whose overlapped all-reduce averageGradients must wait for. */
  private awaiting: readonly Tensor[] | null = null;
  /** What the last overlapped backward did (benchmarks, tests). */
  lastOverlap: OverlapReport | null = null;

  private constructor(
    readonly env: RankEnvironment,
    readonly timeoutSec: number,
    readonly backend: CollectiveBackend = 'gloo',
    sync: { overlap: boolean; bucketBytes: number } = gradientSyncSettings({}),
  ) {
    this.overlap = sync.overlap;
    this.bucketBytes = sync.bucketBytes;
  }

  /**
   * The GPU this rank trains on: 'cuda' (or auto's choice) becomes
   * cuda:LOCAL_RANK (modulo the GPUs visible), as torchrun's ranks each take
   * one GPU; an explicit cuda:N or cpu stays as given.
   */
  rankDevice(device: Device): Device {
    return device === 'cuda' ? `cuda:${this.env.localRank % Math.max(1, cudaDeviceCount())}` : device;
  }

  get rank(): number {
    return this.env.rank;
  }
  get worldSize(): number {
    return this.env.worldSize;
  }
  /** Rank 0: the one that writes files and prints. */
  get isMain(): boolean {
    return this.env.rank === 0;
  }

  /**
   * Joins the group described by `env`. Timeouts: PD_DIST_JOIN_TIMEOUT
   * (seconds, default 300) for every rank to arrive, PD_DIST_TIMEOUT (default
   * 1800) for any one collective; a rank that dies is noticed at once.
   */
  /** The group this process is a rank of, per torchrun's environment; null for a single process. */
  static async joinFromEnvironment(vars: NodeJS.ProcessEnv = process.env, deviceHint?: string): Promise<ProcessGroup | null> {
    const env = readRankEnvironment(vars);
    return env && env.worldSize > 1 ? ProcessGroup.join(env, vars, deviceHint) : null;
  }

  static async join(env: RankEnvironment, vars: NodeJS.ProcessEnv = process.env, deviceHint?: string): Promise<ProcessGroup> {
    if (!collectivesAvailable())
      throw new Error('this build has no distributed training: gloo\'s headers were missing when the addon was built (apt-get install libgloo-dev, then npx patch-diffusion setup --rebuild)');
    const backend = chooseBackend(vars, deviceHint);
    const sync = gradientSyncSettings(vars);
    const joinTimeoutSec = seconds(vars, 'PD_DIST_JOIN_TIMEOUT', 300);
    const timeoutSec = seconds(vars, 'PD_DIST_TIMEOUT', 1800);
    let master: string;
    try {
      master = (await lookup(env.masterAddr, { family: 4 })).address;
    } catch {
      throw new Error(`rank ${env.rank}: MASTER_ADDR=${env.masterAddr} does not resolve to an IPv4 address`);
    }
    const hostStore = env.rank === 0 && !env.agentStore;
    if (hostStore) {
      const local = Object.values(networkInterfaces()).flat().map((i) => i?.address);
      if (!isLoopback(master) && !local.includes(master))
        throw new Error(`rank 0 hosts the rendezvous, but MASTER_ADDR=${env.masterAddr} (${master}) is not an address of this machine (its addresses: ${local.filter(Boolean).join(', ')})`);
      if (await portInUse(env.masterPort))
        throw new Error(`rank 0: MASTER_PORT=${env.masterPort} is already in use on this machine (another run or program holds it): choose a free port`);
    }
    // Gloo binds to the address the others can reach us at: the one facing rank 0's machine.
    const deviceHost = env.glooInterface ? '' : isLoopback(master) ? master : await localAddressToward(master);
    // torchrun's agent hosts a TCPStore of its own PyTorch; 2.x's store protocol is not 1.13's (measured: the client hangs).
    const agentHint = env.agentStore
      ? `. The rendezvous is torchrun's own store (TORCHELASTIC_USE_AGENT_STORE): run torchrun from the PyTorch whose libtorch this addon uses (${describeEngine()}), or start the ranks with patch-diffusion's --nproc/--nnodes`
      : '';
    const failed = (why: string) =>
      `rank ${env.rank} of ${env.worldSize}: could not join the group at ${env.masterAddr}:${env.masterPort} within ${joinTimeoutSec} s (PD_DIST_JOIN_TIMEOUT): ${why}${agentHint}`;
    try {
      joinProcessGroup({
        masterAddr: master,
        masterPort: env.masterPort,
        rank: env.rank,
        worldSize: env.worldSize,
        joinTimeoutMs: Math.round(joinTimeoutSec * 1000),
        timeoutMs: Math.round(timeoutSec * 1000),
        hostStore,
        storePrefix: env.agentStore ? `/worker/attempt_${env.restartCount}/` : 'patch-diffusion/',
        deviceHost,
        networkInterface: env.glooInterface,
        stuckMessage: failed('the rendezvous never answered'),
        backend,
        cudaDevice: backend === 'nccl' ? env.localRank % Math.max(1, cudaDeviceCount()) : 0,
      });
    } catch (err) {
      throw new Error(failed(err instanceof Error ? err.message.replace(/^distInit\([^)]*\): /, '') : String(err)));
    }
    return new ProcessGroup(env, timeoutSec, backend, sync);
  }

  private run<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const why = err instanceof Error ? err.message.replace(/^dist\w+\([^)]*\): /, '') : String(err);
      throw new Error(
        `rank ${this.rank} of ${this.worldSize}: ${what} failed: ${why}. ` +
          'Another rank has probably stopped (crashed, killed, or an error of its own: see its output above), ' +
          `or did not answer within PD_DIST_TIMEOUT (${this.timeoutSec} s)`,
      );
    }
  }

  /** Sums numbers over the ranks (float64, exact for integers below 2^53). */
  sum(values: readonly number[]): number[] {
    return scope(() => {
      const t = tensor(Float64Array.from(values), [values.length], { dtype: 'float64' });
      this.sumTensor(t, 'statistics');
      return Array.from(t.data() as Float64Array);
    });
  }

  /** Sums a contiguous tensor over the ranks, in place. */
  sumTensor(t: Tensor, what: string): void {
    this.run(`summing ${what}`, () => allreduceSum(t));
  }

  /**
   * Gathers bytes by summing: each rank passes a buffer of the same length
   * holding its own bytes in its own slots and zeros elsewhere; every rank
   * gets back everyone's bytes.
   */
  sumBytes(slots: Uint8Array, what: string): Uint8Array {
    return scope(() => {
      const t = tensor(slots, [slots.length], { dtype: 'uint8' });
      this.sumTensor(t, what);
      return new Uint8Array(t.data() as Uint8Array);
    });
  }

  /** Every tensor takes rank 0's values (weights and buffers at start, resumed state). */
  broadcastTensors(tensors: readonly Tensor[], what: string): void {
    this.run(`broadcasting ${what} from rank 0`, () => broadcast(tensors, 0));
  }

  /**
   * The last accumulation round's backward pass (src/train/step.ts). With
   * overlap on, it starts the all-reduce of `params`' gradients, bucket by
   * bucket as they become final, and averageGradients then waits for it; with
   * overlap off it is a plain backward. Earlier rounds call loss.backward()
   * themselves: their gradients are not final (DDP's no_sync).
   */
  backward(loss: Tensor, params: readonly Tensor[]): void {
    if (!this.overlap) return loss.backward();
    if (this.awaiting) throw new Error('ProcessGroup.backward: the previous step\'s gradients were never averaged (averageGradients)');
    this.lastOverlap = backwardOverlapped(loss, params, this.bucketBytes, Math.min(FIRST_BUCKET_BYTES, this.bucketBytes));
    this.awaiting = params;
  }

  /** Gradients averaged over the ranks (DDP): waits for the all-reduce backward started, else runs it now. */
  averageGradients(params: readonly Tensor[]): void {
    const started = this.awaiting;
    if (started) {
      this.awaiting = null;
      if (started.length !== params.length || started.some((p, k) => p !== params[k]))
        throw new Error('ProcessGroup.averageGradients: not the parameters whose all-reduce backward started');
      this.run('averaging gradients', () => awaitGradients());
      return;
    }
    this.run('averaging gradients', () => averageGradients(params, this.bucketBytes));
  }

  barrier(what: string): void {
    this.run(`waiting for every rank (${what})`, () => barrier());
  }

  /** Rank 0's JSON value on every rank. */
  broadcastJson<T>(value: T | undefined, what: string): T {
    const bytes = this.isMain ? new TextEncoder().encode(JSON.stringify(value ?? null)) : new Uint8Array(0);
    const [length] = this.sum([this.isMain ? bytes.length : 0]);
    return scope(() => {
      const buf = tensor(this.isMain ? bytes : new Uint8Array(length!), [length!], { dtype: 'uint8' });
      this.broadcastTensors([buf], what);
      return JSON.parse(new TextDecoder().decode(buf.data() as Uint8Array)) as T;
    });
  }

  /** Every rank's JSON value, in rank order, on every rank. */
  gatherJson<T>(value: T, what: string): T[] {
    const mine = new TextEncoder().encode(JSON.stringify(value));
    const lengths = this.sum(Array.from({ length: this.worldSize }, (_, r) => (r === this.rank ? mine.length : 0)));
    const offsets = lengths.map((_, r) => lengths.slice(0, r).reduce((a, b) => a + b, 0));
    const all = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
    all.set(mine, offsets[this.rank]);
    const bytes = this.sumBytes(all, what);
    return lengths.map((n, r) => JSON.parse(new TextDecoder().decode(bytes.subarray(offsets[r]!, offsets[r]! + n))) as T);
  }
}
