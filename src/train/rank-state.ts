// What differs between the ranks of a data-parallel run, and how a resumed
// run gets it back: each rank's place in the shared data stream and its own
// random streams (patch sizes, crops, σ, noise, dropout). With the world size
// of the saved run each rank continues exactly; with another one the data
// stream continues where the furthest rank was and the random streams start
// afresh from seeds derived from (seed, world size, rank, step), which the
// log says.
import { Generator, scope, type Tensor } from '../tensor/index.js';
import type { SamplerState } from '../data/index.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import type { TrainingComponents } from './components.js';
import { rankSeed, SHARED_PATCH_GENERATOR } from './components.js';
import type { LoopState, RankState } from './checkpoint.js';

export function rankState(c: TrainingComponents): RankState {
  return {
    sampler: c.sampler.getState(),
    rng: Object.fromEntries(Object.entries(c.generators).map(([name, g]) => [name, Buffer.from(g.getState()).toString('base64')])),
  };
}

/** The saved run's world size and each of its ranks' states (a single-process state is one rank). */
export function savedRanks(loop: LoopState, rank0Rng: Record<string, Uint8Array>): RankState[] {
  if (loop.ranks?.length) return loop.ranks;
  return [{ sampler: loop.sampler, rng: Object.fromEntries(Object.entries(rank0Rng).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) }];
}

/**
 * Restores rank `c.rank`'s streams from a saved run's ranks. Returns a line
 * for the log when the world size changed (null when the run continues exactly).
 */
export function restoreRankState(c: TrainingComponents, saved: RankState[], seed: number, step: number, data = 'the data'): string | null {
  // The data set must be the one the state was saved with: its order is the sampler's state.
  const was = (saved[0]!.sampler as SamplerState | null)?.length;
  const now = (c.sampler.getState() as SamplerState).length;
  if (was !== undefined && was !== now)
    throw new Error(
      `--resume: the data set changed since this state was saved: ${was} items then, ${now} now (${data}; mirrored copies count with --xflip). ` +
        'Resume with the same images, or start a new run from these weights with --transfer',
    );
  if (saved.length === c.worldSize) {
    const mine = saved[c.rank]!;
    c.sampler.setState(mine.sampler);
    for (const [name, g] of Object.entries(c.generators)) {
      const state = mine.rng[name];
      if (state === undefined) throw new Error(`the training state has no '${name}' generator for rank ${c.rank}`);
      g.setState(new Uint8Array(Buffer.from(state, 'base64')));
    }
    return null;
  }
  // The furthest any saved rank got in the shared stream, rounded up to whole rows of the new world.
  const samplers = saved.map((r) => r.sampler as SamplerState);
  const furthest = Math.max(...samplers.map((s) => s.position));
  const position = Math.ceil(furthest / c.worldSize) * c.worldSize;
  c.sampler.setState({ ...samplers[0]!, rank: c.rank, worldSize: c.worldSize, position });
  Object.entries(c.generators).forEach(([name, g], k) => {
    // The shared patch-size stream must stay the same on every rank.
    const rank = name === SHARED_PATCH_GENERATOR ? 0 : c.rank;
    const fresh = new Generator((rankSeed(seed, rank, c.worldSize) + 7919 * (step + 1) + 104729 * k) % 2 ** 31);
    g.setState(fresh.getState());
  });
  return (
    `Resuming a ${saved.length}-process state with ${c.worldSize} process${c.worldSize > 1 ? 'es' : ''}: the data stream continues at item ${position}, ` +
    'and each rank\'s random streams (patch sizes, crops, noise, dropout) start from new seeds, so the run is not bit-identical to one that kept ' +
    `${saved.length} process${saved.length > 1 ? 'es' : ''}; weights, EMA and optimizer state are exact`
  );
}

/** Rank 0's network (parameters and buffers), EMA and optimizer state on every rank, as DDP does at construction. */
export function broadcastTrainingState(dist: ProcessGroup, c: TrainingComponents): void {
  dist.broadcastTensors([...c.net.stateDict().values()], 'the network');
  dist.broadcastTensors([...c.ema.stateDict().values()], 'the EMA network');
  const adam = c.adam.state();
  dist.broadcastTensors([...adam.expAvg, ...adam.expAvgSq], 'the optimizer moments');
  const step = dist.broadcastJson(adam.step, 'the optimizer step');
  if (step !== adam.step) c.adam.loadState({ ...adam, step });
}

/** Every rank holds the same weights, or an error naming the first rank that differs (the official check_ddp_consistency). */
export function checkSameWeights(dist: ProcessGroup, c: TrainingComponents, kimg: number): void {
  const fingerprint = scope(() => fingerprintOf([...c.netParams, ...c.emaParams]));
  const all = dist.gatherJson(fingerprint, 'weight fingerprints');
  const reference = all[0]!;
  all.forEach((f, r) => {
    // Exact in practice; the slack only covers float64 sums taken with different thread counts.
    const differs = f.some((v, k) => Math.abs(v - reference[k]!) > 1e-9 * Math.max(1, Math.abs(reference[k]!)));
    if (differs) throw new Error(`rank ${r}'s weights differ from rank 0's at kimg ${kimg.toFixed(1)}: the ranks have diverged (please report this)`);
  });
}

function fingerprintOf(tensors: readonly Tensor[]): number[] {
  return tensors.flatMap((t) => {
    const d = t.detach().to({ dtype: 'float64' });
    return [d.sum().item(), d.square().sum().item()];
  });
}

/** Our launcher is gone (killed): its ranks stop cleanly instead of training on as orphans. */
export function launcherGone(): boolean {
  const pid = process.env.PD_LAUNCHER_PID;
  return pid !== undefined && pid !== '' && process.ppid !== Number(pid);
}
