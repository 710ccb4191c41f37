// The training state: everything a resume restores, in one object. It holds
// the loop's counters and reaches the network, its EMA copy, Adam, the random
// generators and the data position through the run's components; it saves
// them (training-state-KKKKKK.safetensors, never a pickle, written atomically
// so a kill mid-write leaves the previous file), reads them back, gives every
// rank rank 0's weights, and continues a data-parallel run with the same or
// another number of processes.
//
// What differs between the ranks of a data-parallel run is each rank's place
// in the shared data stream and its own random streams (patch sizes, crops, σ,
// noise, dropout). With the saved world size each rank continues exactly; with
// another one the data stream continues where the furthest rank was and the
// random streams start afresh from seeds derived from (seed, world size, rank,
// step), which the log says. The network snapshots a run also writes are
// src/model/snapshot.ts.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { SnapshotInfo } from '../model/snapshot.js';
import { Generator, scope, tensor, type Tensor } from '../tensor/index.js';
import type { SamplerState } from '../data/index.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { rankSeed, SHARED_PATCH_GENERATOR, type TrainingComponents } from './components.js';

export const STATE_FORMAT = 'patch-diffusion/training-state@1';

export const stateName = (kimg: number) => `training-state-${String(Math.floor(kimg)).padStart(6, '0')}.safetensors`;

/** The loop's counters: patch samples (the official cur_nimg), ticks, optimizer steps. */
export interface Counters {
  curNimg: number;
  curTick: number;
  step: number;
  /** curNimg when the current tick began. */
  tickStartNimg: number;
  /** Wall-clock seconds spent training by earlier processes of this run (this process's time is added when saved). */
  elapsedSec: number;
  /** Snapshots written so far, so `--metrics-every` keeps its rhythm across a resume (absent in older states: 0). */
  snapshots: number;
}

/** What is a rank's own: its place in the data stream and its generators (base64 of their states). */
export interface RankStreams {
  sampler: unknown;
  rng: Record<string, string>;
}

/** A training state file as read: the JSON every rank needs and, on the rank that read it, the tensors. */
export interface SavedState {
  path: string;
  options: Record<string, unknown>;
  network: Record<string, unknown>;
  counters: Counters;
  /** Each saved rank's own streams (one in a single-process run). */
  ranks: RankStreams[];
  adamStep: number;
  /** Network, EMA and Adam moments; only on the rank that read the file (the others get them by broadcast). */
  tensors?: Map<string, Tensor>;
}

/** A training state that was passed over on resume, and why. */
export interface SkippedState {
  path: string;
  why: string;
}

/** The parts of a run a state saves and restores. */
export type StateParts = Pick<TrainingComponents, 'net' | 'ema' | 'netParams' | 'emaParams' | 'adam' | 'generators' | 'batches' | 'rank' | 'worldSize'>;

const COUNTERS: readonly (keyof Counters)[] = ['curNimg', 'curTick', 'step', 'tickStartNimg', 'elapsedSec'];

export class TrainingState {
  readonly counters: Counters;
  private readonly startedAt = Date.now();

  constructor(
    private readonly parts: StateParts,
    counters?: Counters,
  ) {
    this.counters = { ...(counters ?? { curNimg: 0, curTick: 0, step: 0, tickStartNimg: 0, elapsedSec: 0, snapshots: 0 }) };
  }

  get kimg(): number {
    return this.counters.curNimg / 1000;
  }

  /** Training seconds so far, earlier processes of the run included. */
  totalSeconds(now = Date.now()): number {
    return this.counters.elapsedSec + (now - this.startedAt) / 1000;
  }

  /** One optimizer step done: the counter advances by the step's patch samples, floored (the official int()). */
  advance(imagesPerStep: number): void {
    this.counters.curNimg += Math.floor(imagesPerStep);
    this.counters.step += 1;
  }

  /** The tick ends: a state saved from now on resumes at the next tick, not this one again. */
  startNextTick(): void {
    this.counters.curTick += 1;
    this.counters.tickStartNimg = this.counters.curNimg;
  }

  /** This rank's own streams. */
  ownStreams(): RankStreams {
    return {
      sampler: this.parts.batches.getState(),
      rng: Object.fromEntries(Object.entries(this.parts.generators).map(([name, g]) => [name, Buffer.from(g.getState()).toString('base64')])),
    };
  }

  /**
   * Writes the state to `path`. Every rank of a data-parallel run calls it (each
   * rank's streams travel to rank 0), and only rank 0 writes.
   */
  save(path: string, meta: { options: Record<string, unknown>; info: SnapshotInfo }, dist: ProcessGroup | null = null): void {
    const ranks = dist ? dist.gatherJson<RankStreams>(this.ownStreams(), 'each rank\'s data position and random streams') : null;
    if (dist && !dist.isMain) return;
    const { net, ema, adam: optimizer, generators } = this.parts;
    const loop = {
      ...this.counters,
      elapsedSec: this.totalSeconds(),
      sampler: this.parts.batches.getState(),
      ...(dist ? { worldSize: dist.worldSize, ranks } : {}),
    };
    const tensors = new Map<string, Tensor>();
    for (const [k, t] of net.stateDict()) tensors.set(`net.${k}`, t);
    for (const [k, t] of ema.stateDict()) tensors.set(`ema.${k}`, t);
    const adam = optimizer.state();
    net.namedParameters().forEach(([n], k) => {
      tensors.set(`adam.exp_avg.${n}`, adam.expAvg[k]!);
      tensors.set(`adam.exp_avg_sq.${n}`, adam.expAvgSq[k]!);
    });
    // Rank 0's generators also as tensors, as states have always stored them.
    scope(() => {
      for (const [name, g] of Object.entries(generators)) tensors.set(`rng.${name}`, tensor(g.getState(), undefined, { dtype: 'uint8' }));
      writeSafetensors(path, tensors, {
        format: STATE_FORMAT,
        loop: JSON.stringify(loop),
        adam: JSON.stringify({ step: adam.step }),
        options: JSON.stringify(meta.options),
        network: JSON.stringify(meta.info.network),
        dataset: JSON.stringify(meta.info.dataset),
      });
    });
  }

  /** Reads and checks a state file (its checksum, format and metadata); a file that fails leaves no tensors behind. */
  static read(path: string): SavedState {
    const { tensors, metadata } = readSafetensors(path);
    try {
      return parseState(path, tensors, metadata);
    } catch (err) {
      for (const t of tensors.values()) t.dispose();
      throw err;
    }
  }

  /** Frees a saved state's tensors where no restore will use them (a finished run, a dry run). */
  static discard(saved: SavedState): void {
    for (const t of saved.tensors?.values() ?? []) t.dispose();
    delete saved.tensors;
  }

  /**
   * The newest training state of a run that reads and verifies, with the newer
   * ones passed over and why. Given a file, that file or an error naming the
   * newest good state before it.
   */
  static openLatestGood(pathOrDir: string): { saved: SavedState; skipped: SkippedState[] } {
    const newest = findLatestState(pathOrDir);
    const dir = dirname(newest);
    const named = pathOrDir.endsWith('.safetensors');
    const candidates = named ? [newest] : stateFiles(dir).reverse().map((f) => join(dir, f));
    const skipped: SkippedState[] = [];
    for (const path of candidates) {
      try {
        return { saved: TrainingState.read(path), skipped };
      } catch (err) {
        skipped.push({ path, why: err instanceof Error ? err.message : String(err) });
      }
    }
    const why = skipped.map((s) => `  ${s.why}`).join('\n');
    if (named) {
      const older = stateFiles(dir).filter((f) => join(dir, f) < newest);
      throw new Error(`--resume: ${newest} cannot be used:\n${why}${older.length ? `\nthe state before it: --resume ${join(dir, older.at(-1)!)}` : ''}`);
    }
    throw new Error(`--resume: no usable training state in ${pathOrDir}:\n${why}`);
  }

  /**
   * Continues from a saved state: the counters, the weights, EMA and Adam (on
   * the rank holding the tensors; `broadcast` gives them to the others), and
   * this rank's own streams. Returns a line for the log when the world size
   * changed (null when the run continues exactly).
   */
  restore(saved: SavedState, seed: number, data = 'the data'): string | null {
    Object.assign(this.counters, saved.counters);
    if (saved.tensors) this.loadTensors(saved);
    return this.restoreStreams(saved.ranks, seed, data);
  }

  private loadTensors(saved: SavedState): void {
    const tensors = saved.tensors!;
    const sub = (prefix: string) => new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
    const { net, ema, adam } = this.parts;
    net.loadStateDict(sub('net.'));
    ema.loadStateDict(sub('ema.'));
    const names = net.namedParameters().map(([n]) => n);
    const m = sub('adam.exp_avg.'), v = sub('adam.exp_avg_sq.');
    const missing = names.filter((n) => !m.has(n) || !v.has(n));
    if (missing.length) throw new Error(`${saved.path}: optimizer state lacks moments for ${missing.slice(0, 5).join(', ')}`);
    adam.loadState({ step: saved.adamStep, expAvg: names.map((n) => m.get(n)!), expAvgSq: names.map((n) => v.get(n)!) });
    TrainingState.discard(saved);
  }

  private restoreStreams(saved: RankStreams[], seed: number, data: string): string | null {
    const { batches: sampler, generators, rank, worldSize } = this.parts;
    // The data set must be the one the state was saved with: its order is the sampler's state.
    const was = (saved[0]!.sampler as SamplerState | null)?.length;
    const now = (sampler.getState() as SamplerState).length;
    if (was !== undefined && was !== now)
      throw new Error(
        `--resume: the data set changed since this state was saved: ${was} items then, ${now} now (${data}; mirrored copies count with --xflip). ` +
          'Resume with the same images, or start a new run from these weights with --transfer',
      );
    if (saved.length === worldSize) {
      const mine = saved[rank]!;
      sampler.setState(mine.sampler);
      for (const [name, g] of Object.entries(generators)) {
        const state = mine.rng[name];
        if (state === undefined) throw new Error(`the training state has no '${name}' generator for rank ${rank}`);
        g.setState(new Uint8Array(Buffer.from(state, 'base64')));
      }
      return null;
    }
    // The furthest any saved rank got in the shared stream, rounded up to whole rows of the new world.
    const samplers = saved.map((r) => r.sampler as SamplerState);
    const furthest = Math.max(...samplers.map((s) => s.position));
    const position = Math.ceil(furthest / worldSize) * worldSize;
    sampler.setState({ ...samplers[0]!, rank, worldSize, position });
    Object.entries(generators).forEach(([name, g], k) => {
      // The shared patch-size stream must stay the same on every rank.
      const streamRank = name === SHARED_PATCH_GENERATOR ? 0 : rank;
      const fresh = new Generator((rankSeed(seed, streamRank, worldSize) + 7919 * (this.counters.step + 1) + 104729 * k) % 2 ** 31);
      g.setState(fresh.getState());
    });
    return (
      `Resuming a ${saved.length}-process state with ${worldSize} process${worldSize > 1 ? 'es' : ''}: the data stream continues at item ${position}, ` +
      'and each rank\'s random streams (patch sizes, crops, noise, dropout) start from new seeds, so the run is not bit-identical to one that kept ' +
      `${saved.length} process${saved.length > 1 ? 'es' : ''}; weights, EMA and optimizer state are exact`
    );
  }

  /** Rank 0's network (parameters and buffers), EMA and optimizer state on every rank, as DDP does at construction. */
  broadcast(dist: ProcessGroup): void {
    const { net, ema, adam } = this.parts;
    dist.broadcastTensors([...net.stateDict().values()], 'the network');
    dist.broadcastTensors([...ema.stateDict().values()], 'the EMA network');
    const moments = adam.state();
    dist.broadcastTensors([...moments.expAvg, ...moments.expAvgSq], 'the optimizer moments');
    const step = dist.broadcastJson(moments.step, 'the optimizer step');
    if (step !== moments.step) adam.loadState({ ...moments, step });
  }

  /** Every rank holds the same weights, or an error naming the first rank that differs (the official check_ddp_consistency). */
  checkSameWeights(dist: ProcessGroup): void {
    const fingerprint = scope(() =>
      [...this.parts.netParams, ...this.parts.emaParams].flatMap((t) => {
        const d = t.detach().to({ dtype: 'float64' });
        return [d.sum().item(), d.square().sum().item()];
      }),
    );
    const all = dist.gatherJson(fingerprint, 'weight fingerprints');
    const reference = all[0]!;
    all.forEach((f, r) => {
      // Exact in practice; the slack only covers float64 sums taken with different thread counts.
      const differs = f.some((v, k) => Math.abs(v - reference[k]!) > 1e-9 * Math.max(1, Math.abs(reference[k]!)));
      if (differs) throw new Error(`rank ${r}'s weights differ from rank 0's at kimg ${this.kimg.toFixed(1)}: the ranks have diverged (please report this)`);
    });
  }
}

/** A state file's metadata checked and parsed, with its tensors. */
function parseState(path: string, tensors: Map<string, Tensor>, metadata: Record<string, string>): SavedState {
  if (metadata.format !== STATE_FORMAT)
    throw new Error(`${path}: not a patch-diffusion training state (format '${metadata.format ?? 'missing'}', expected '${STATE_FORMAT}')`);
  const meta = (key: string): unknown => {
    if (metadata[key] === undefined) throw new Error(`${path}: the training state's metadata has no '${key}'`);
    try {
      return JSON.parse(metadata[key]!);
    } catch (err) {
      throw new Error(`${path}: the training state's metadata '${key}' is not valid JSON (${(err as Error).message})`);
    }
  };
  const loop = meta('loop') as Partial<Counters> & { sampler?: unknown; ranks?: RankStreams[] };
  for (const key of COUNTERS)
    if (typeof loop?.[key] !== 'number' || !Number.isFinite(loop[key]) || loop[key] < 0)
      throw new Error(`${path}: the training state's counters lack a valid '${key}' (got ${JSON.stringify(loop?.[key])})`);
  const adam = meta('adam') as { step?: unknown };
  if (typeof adam?.step !== 'number') throw new Error(`${path}: the training state's metadata 'adam' lacks its step`);
  const counters = Object.fromEntries(COUNTERS.map((k) => [k, loop[k]])) as Omit<Counters, 'snapshots'>;
  // A single-process state keeps its one rank's streams as the sampler and the rng.* tensors.
  const ranks = loop.ranks?.length
    ? loop.ranks
    : [{ sampler: loop.sampler ?? null, rng: Object.fromEntries([...tensors].filter(([k]) => k.startsWith('rng.')).map(([k, t]) => [k.slice(4), Buffer.from(t.data() as Uint8Array).toString('base64')])) }];
  return {
    path,
    options: meta('options') as Record<string, unknown>,
    network: meta('network') as Record<string, unknown>,
    counters: { ...counters, snapshots: typeof loop.snapshots === 'number' ? loop.snapshots : 0 },
    ranks,
    adamStep: adam.step,
    tensors,
  };
}

const stateFiles = (dir: string) => readdirSync(dir).filter((f) => /^training-state-\d{6}\.safetensors$/.test(f)).sort();

/** The newest training state in a run directory (or the file itself). */
export function findLatestState(pathOrDir: string): string {
  if (!existsSync(pathOrDir)) throw new Error(`--resume: ${pathOrDir} does not exist`);
  if (pathOrDir.endsWith('.safetensors')) return pathOrDir;
  if (!statSync(pathOrDir).isDirectory()) throw new Error(`--resume: ${pathOrDir} is neither a run directory nor a training-state-*.safetensors file`);
  const states = stateFiles(pathOrDir);
  if (!states.length) throw new Error(`--resume: no training-state-*.safetensors in ${pathOrDir}`);
  return join(pathOrDir, states.at(-1)!);
}
