// The training state on disk (training-state-KKKKKK.safetensors, never a
// pickle): everything needed to continue a run bit for bit: network, EMA,
// Adam moments and step, generator states, data-sampler state and counters.
// Written atomically, so a kill mid-write leaves the previous file. (The
// network snapshots a run also writes are src/model/snapshot.ts.)
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { SnapshotInfo } from '../model/snapshot.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import type { Module } from '../nn/module.js';
import type { Adam } from '../optim/adam.js';

export const STATE_FORMAT = 'patch-diffusion/training-state@1';

export const stateName = (kimg: number) => `training-state-${String(Math.floor(kimg)).padStart(6, '0')}.safetensors`;

/** Counters and small state of the loop, stored as JSON in the state file. */
export interface LoopState {
  curNimg: number;
  curTick: number;
  step: number;
  tickStartNimg: number;
  /** Wall-clock seconds spent training before this state (for the log's total time). */
  elapsedSec: number;
  /** Snapshots written so far, so `--metrics-every` keeps its rhythm across a resume (absent in older states: 0). */
  snapshots?: number;
  /** Rank 0's data-sampler state (the only one in a single-process run). */
  sampler: unknown;
  /** Data-parallel runs: the number of processes, and each rank's own streams (rank 0's `rng.*` tensors are also stored as tensors). */
  worldSize?: number;
  ranks?: RankState[];
}

/** What is a rank's own in a data-parallel run: its place in the data stream and its generators (base64 of their states). */
export interface RankState {
  sampler: unknown;
  rng: Record<string, string>;
}

export interface TrainingStateParts {
  net: Module;
  ema: Module;
  adam: Adam;
  generators: Record<string, Generator>;
  loop: LoopState;
  options: Record<string, unknown>;
  info: SnapshotInfo;
}

export function saveTrainingState(path: string, p: TrainingStateParts): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of p.net.stateDict()) tensors.set(`net.${k}`, t);
  for (const [k, t] of p.ema.stateDict()) tensors.set(`ema.${k}`, t);
  const names = p.net.namedParameters().map(([n]) => n);
  const adam = p.adam.state();
  names.forEach((n, k) => {
    tensors.set(`adam.exp_avg.${n}`, adam.expAvg[k]!);
    tensors.set(`adam.exp_avg_sq.${n}`, adam.expAvgSq[k]!);
  });
  const owned: Tensor[] = [];
  for (const [name, g] of Object.entries(p.generators)) {
    const s = tensor(g.getState(), undefined, { dtype: 'uint8' });
    owned.push(s);
    tensors.set(`rng.${name}`, s);
  }
  try {
    writeSafetensors(path, tensors, {
      format: STATE_FORMAT,
      loop: JSON.stringify(p.loop),
      adam: JSON.stringify({ step: adam.step }),
      options: JSON.stringify(p.options),
      network: JSON.stringify(p.info.network),
      dataset: JSON.stringify(p.info.dataset),
    });
  } finally {
    for (const t of owned) t.dispose();
  }
}

export interface LoadedTrainingState {
  loop: LoopState;
  options: Record<string, unknown>;
  network: Record<string, unknown>;
  /** The saved generators' states (rank 0's in a data-parallel run). */
  generatorStates: Record<string, Uint8Array>;
  /** Restores network, EMA, optimizer and generators in place. */
  restore(parts: Pick<TrainingStateParts, 'net' | 'ema' | 'adam' | 'generators'>): void;
}

export function readTrainingState(path: string): LoadedTrainingState {
  const { tensors, metadata } = readSafetensors(path);
  if (metadata.format !== STATE_FORMAT)
    throw new Error(`${path}: not a patch-diffusion training state (format '${metadata.format ?? 'missing'}', expected '${STATE_FORMAT}')`);
  const sub = (prefix: string) =>
    new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
  const generatorStates = Object.fromEntries([...sub('rng.')].map(([name, t]) => [name, new Uint8Array(t.data() as Uint8Array)]));
  const meta = (key: string): unknown => {
    if (metadata[key] === undefined) throw new Error(`${path}: the training state's metadata has no '${key}'`);
    try {
      return JSON.parse(metadata[key]!);
    } catch (err) {
      throw new Error(`${path}: the training state's metadata '${key}' is not valid JSON (${(err as Error).message})`);
    }
  };
  const loop = meta('loop') as LoopState;
  for (const key of ['curNimg', 'curTick', 'step', 'tickStartNimg', 'elapsedSec'] as const)
    if (typeof loop?.[key] !== 'number' || !Number.isFinite(loop[key]) || loop[key] < 0)
      throw new Error(`${path}: the training state's counters lack a valid '${key}' (got ${JSON.stringify(loop?.[key])})`);
  const adamStep = meta('adam') as { step?: unknown };
  if (typeof adamStep?.step !== 'number') throw new Error(`${path}: the training state's metadata 'adam' lacks its step`);
  return {
    loop,
    options: meta('options') as Record<string, unknown>,
    network: meta('network') as Record<string, unknown>,
    generatorStates,
    restore(parts) {
      parts.net.loadStateDict(sub('net.'));
      parts.ema.loadStateDict(sub('ema.'));
      const names = parts.net.namedParameters().map(([n]) => n);
      const m = sub('adam.exp_avg.'), v = sub('adam.exp_avg_sq.');
      const missing = names.filter((n) => !m.has(n) || !v.has(n));
      if (missing.length) throw new Error(`${path}: optimizer state lacks moments for ${missing.slice(0, 5).join(', ')}`);
      parts.adam.loadState({
        step: adamStep.step as number,
        expAvg: names.map((n) => m.get(n)!),
        expAvgSq: names.map((n) => v.get(n)!),
      });
      for (const [name, g] of Object.entries(parts.generators)) {
        const s = tensors.get(`rng.${name}`);
        if (!s) throw new Error(`${path}: no state for generator '${name}'`);
        g.setState(s.data() as Uint8Array);
      }
      for (const t of tensors.values()) t.dispose();
    },
  };
}

/** A training state that was passed over on resume, and why. */
export interface SkippedState {
  path: string;
  why: string;
}

/**
 * The newest training state of a run that reads and verifies (its checksum,
 * its format, its metadata), with the newer ones passed over and why. Given
 * a file, that file or an error naming the newest good state before it.
 */
export function openLatestGoodState(pathOrDir: string): { path: string; state: LoadedTrainingState; skipped: SkippedState[] } {
  const newest = findLatestState(pathOrDir);
  const dir = dirname(newest);
  const named = pathOrDir.endsWith('.safetensors');
  const candidates = named
    ? [newest]
    : readdirSync(dir).filter((f) => /^training-state-\d{6}\.safetensors$/.test(f)).sort().reverse().map((f) => join(dir, f));
  const skipped: SkippedState[] = [];
  for (const path of candidates) {
    try {
      return { path, state: readTrainingState(path), skipped };
    } catch (err) {
      skipped.push({ path, why: err instanceof Error ? err.message : String(err) });
    }
  }
  const why = skipped.map((s) => `  ${s.why}`).join('\n');
  if (named) {
    const older = readdirSync(dir).filter((f) => /^training-state-\d{6}\.safetensors$/.test(f) && join(dir, f) < newest).sort();
    throw new Error(`--resume: ${newest} cannot be used:\n${why}${older.length ? `\nthe state before it: --resume ${join(dir, older.at(-1)!)}` : ''}`);
  }
  throw new Error(`--resume: no usable training state in ${pathOrDir}:\n${why}`);
}

/** The newest training state in a run directory (or the file itself). */
export function findLatestState(pathOrDir: string): string {
  if (pathOrDir.endsWith('.safetensors')) {
    if (!existsSync(pathOrDir)) throw new Error(`--resume: ${pathOrDir} does not exist`);
    return pathOrDir;
  }
  if (!existsSync(pathOrDir)) throw new Error(`--resume: ${pathOrDir} does not exist`);
  if (!statSync(pathOrDir).isDirectory()) throw new Error(`--resume: ${pathOrDir} is neither a run directory nor a training-state-*.safetensors file`);
  const states = readdirSync(pathOrDir).filter((f) => /^training-state-\d{6}\.safetensors$/.test(f)).sort();
  if (!states.length) throw new Error(`--resume: no training-state-*.safetensors in ${pathOrDir}`);
  return join(pathOrDir, states[states.length - 1]!);
}
