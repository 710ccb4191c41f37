// Opening a trained network for sampling: a snapshot file, or the newest
// snapshot in a run directory.
import { readNetworkSnapshot, resolveSnapshotPath, type SnapshotInfo } from '../train/checkpoint.js';
import { createNetwork, parseNetworkConfig } from '../networks/config.js';
import type { Preconditioner } from '../networks/precond.js';
import type { Device } from '../tensor/index.js';

export { resolveSnapshotPath };

export function loadSnapshotNetwork(pathOrDir: string, device: Device): { net: Preconditioner; info: SnapshotInfo; path: string } {
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
