// `train --transfer`: start a new run from a snapshot's EMA weights, as the
// official training loop does with --transfer (copy_params_and_buffers with
// require_all=False into both the network and its EMA, EMA ramp-up off). The
// snapshot may be ours or an official .pkl; names present in both are copied,
// a shape mismatch is an error, names only in the new network keep their
// initial values.
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/index.js';
import { readNetworkSnapshot, resolveSnapshotPath } from '../model/snapshot.js';

export interface TransferResult {
  path: string;
  copied: number;
  /** Tensors of the new network that the snapshot lacks (left as initialised). */
  missing: string[];
  /** Snapshot tensors the new network has no place for. */
  unused: string[];
}

export function transferWeights(pathOrDir: string, targets: Module[]): TransferResult {
  const path = resolveSnapshotPath(pathOrDir, '--transfer');
  const { weights } = readNetworkSnapshot(path);
  try {
    const own = targets[0]!.stateDict();
    const mismatched = [...own]
      .filter(([name, t]) => weights.has(name) && weights.get(name)!.shape.join() !== t.shape.join())
      .map(([name, t]) => `'${name}' is [${weights.get(name)!.shape}] in the snapshot but [${t.shape}] here`);
    if (mismatched.length)
      throw new Error(
        `--transfer ${path}: the network does not match the snapshot's: ${mismatched.slice(0, 4).join('; ')}` +
          `${mismatched.length > 4 ? `; … (${mismatched.length} in all)` : ''}. Use the snapshot's architecture (--arch, --cbase, --cres, --attn, --resolution, channels, --cond)`,
      );
    const missing = [...own.keys()].filter((k) => !weights.has(k));
    const unused = [...weights.keys()].filter((k) => !own.has(k));
    if (missing.length === own.size) throw new Error(`--transfer ${path}: no tensor name in the snapshot matches this network (e.g. '${[...weights.keys()][0]}')`);
    noGrad(() => {
      for (const target of targets)
        for (const [name, t] of target.stateDict()) {
          const src = weights.get(name);
          if (src) t.copy_(src);
        }
    });
    return { path, copied: own.size - missing.length, missing, unused };
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}
