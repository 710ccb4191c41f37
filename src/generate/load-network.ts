// Opening a trained network for sampling: a snapshot file, or the newest
// snapshot in a run directory.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readNetworkSnapshot, type SnapshotInfo } from '../train/checkpoint.js';
import { createNetwork, parseNetworkConfig } from '../networks/config.js';
import type { PatchEDMPrecond } from '../networks/precond.js';
import type { Device } from '../tensor/index.js';

export function resolveSnapshotPath(pathOrDir: string): string {
  if (!existsSync(pathOrDir)) throw new Error(`--network: ${pathOrDir} does not exist`);
  if (!statSync(pathOrDir).isDirectory()) return pathOrDir;
  // Ours (.safetensors) or an official run's (.pkl); the newest by kimg, ours first on a tie.
  const snaps = readdirSync(pathOrDir)
    .filter((f) => /^network-snapshot-\d{6}\.(safetensors|pkl)$/.test(f))
    .sort((a, b) => a.slice(17, 23).localeCompare(b.slice(17, 23)) || (a.endsWith('.pkl') ? -1 : 1));
  if (!snaps.length) throw new Error(`--network: no network-snapshot-*.safetensors in ${pathOrDir} (nor an official network-snapshot-*.pkl)`);
  return join(pathOrDir, snaps[snaps.length - 1]!);
}

export function loadSnapshotNetwork(pathOrDir: string, device: Device): { net: PatchEDMPrecond; info: SnapshotInfo; path: string } {
  const path = resolveSnapshotPath(pathOrDir);
  const { info, weights } = readNetworkSnapshot(path);
  try {
    const net = createNetwork(parseNetworkConfig(info.network), { initialize: false });
    net.loadStateDict(weights);
    net.to({ device }).eval();
    return { net, info, path };
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}
