// Opening a trained network for sampling: a snapshot file, or the newest
// snapshot in a run directory.
import { readNetworkSnapshot, resolveSnapshotPath, type SnapshotInfo } from './snapshot.js';
import { createNetwork, parseNetworkConfig, type NetworkConfig } from '../networks/config.js';
import type { Tensor } from '../tensor/index.js';
import type { Preconditioner } from '../networks/precond.js';
import type { Device } from '../tensor/index.js';

export { resolveSnapshotPath };

export function loadSnapshotNetwork(pathOrDir: string, device: Device): { net: Preconditioner; info: SnapshotInfo; path: string } {
  const path = resolveSnapshotPath(pathOrDir);
  const { info, weights } = readNetworkSnapshot(path);
  try {
    const net = buildSnapshotNetwork(path, info, weights);
    net.to({ device }).eval();
    return { net, info, path };
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}

/**
 * The network a snapshot describes, its weights loaded strictly (a snapshot
 * our network cannot run is an error). Its metadata is checked against its
 * tensors before anything is built.
 */
export function buildSnapshotNetwork(path: string, info: SnapshotInfo, weights: Map<string, Tensor>): Preconditioner {
  const config = parseNetworkConfig(info.network);
  checkConfigAgainstWeights(path, config, weights);
  const net = createNetwork(config, { initialize: false });
  try {
    net.loadStateDict(weights);
  } catch (err) {
    net.dispose();
    throw err;
  }
  return net;
}

/**
 * A lower bound on the parameters a configuration describes: every encoder
 * block of a U-Net (SongUNet and DhariwalUNet alike) has a 3×3 convolution
 * from its level's channels to the same, num_blocks per level. Missing keys
 * count as their smallest value, so the bound stays a bound.
 */
export function minimumParameters(c: NetworkConfig): number {
  const base = c.model_channels ?? 1;
  const blocks = c.num_blocks ?? 1;
  return (c.channel_mult ?? [1]).reduce((n, m) => n + blocks * 9 * (base * m) ** 2, 0);
}

/**
 * The file's metadata must describe a network its tensors can fill before
 * the network is built: a few-kilobyte file whose metadata says
 * model_channels 65536 would otherwise allocate 64 GiB first.
 */
export function checkConfigAgainstWeights(path: string, c: NetworkConfig, weights: Map<string, Tensor>): void {
  let held = 0;
  for (const t of weights.values()) held += t.numel;
  const needed = minimumParameters(c);
  if (needed > held)
    throw new Error(
      `${path}: its metadata describes a network of at least ${needed.toLocaleString('en-US')} parameters ` +
        `(model_channels ${c.model_channels}, channel_mult ${JSON.stringify(c.channel_mult ?? [1])}, num_blocks ${c.num_blocks ?? 1}), ` +
        `but the file holds ${held.toLocaleString('en-US')} values: the metadata does not match the tensors`,
    );
}
