// Sharing per-seed work (sampling images) across the ranks, as the official
// generate.py does, and bringing the results back together in seed order.
import type { ProcessGroup } from './process-group.js';

/**
 * The official generate.py's split of n items: a multiple of `world`
 * near-equal batches of at most `maxBatch` (torch.tensor_split), rank r
 * taking batches r, r + world, ... Returns the positions (0..n−1) of each of
 * rank r's batches.
 */
export function rankBatches(n: number, maxBatch: number, rank: number, world: number): number[][] {
  const count = Math.max(1, Math.ceil(n / (maxBatch * world))) * world;
  const base = Math.floor(n / count), extra = n % count;
  const all: number[][] = [];
  let at = 0;
  for (let k = 0; k < count; k++) {
    const size = base + (k < extra ? 1 : 0);
    all.push(Array.from({ length: size }, (_, i) => at + i));
    at += size;
  }
  return all.filter((b, k) => k % world === rank && b.length > 0);
}

/**
 * Every rank's results in position order, on every rank: `mine` holds
 * `itemBytes` bytes for each of `positions` (this rank's, in order).
 */
export function gatherInOrder(dist: ProcessGroup, n: number, positions: readonly number[], mine: Uint8Array, itemBytes: number, what: string): Uint8Array {
  const all = new Uint8Array(n * itemBytes);
  positions.forEach((p, k) => all.set(mine.subarray(k * itemBytes, (k + 1) * itemBytes), p * itemBytes));
  // Each position is filled by exactly one rank.
  return dist.sumBytes(all, what);
}
