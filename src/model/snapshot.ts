// A trained network on disk: our network snapshot (network-snapshot-KKKKKK.safetensors:
// the EMA network, names as the official state dict, `model.…`, with its
// config, the data it was trained on and its training options), or an
// official EDM / Patch Diffusion network-snapshot-*.pkl read safely.
// Training writes them; generate, metrics, convert, export and serve read them.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { sniffFileKind } from '../io/file-kind.js';
import { loadOfficialNetwork, type OfficialNetwork } from '../networks/official-snapshot.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { LatentInfo } from '../latents/codec.js';

export const SNAPSHOT_FORMAT = 'patch-diffusion/network-snapshot@1';

/** What a snapshot says about the network and the data it was trained on. */
export interface SnapshotInfo {
  network: Record<string, unknown>;
  dataset: { name: string; resolution: number; channels: number; labelDim: number };
  kimg: number;
  trainingOptions?: Record<string, unknown>;
  /** A latent network: the VAE and scaling its samples are decoded with (absent in pixel space). */
  latent?: LatentInfo;
}

export const snapshotName = (kimg: number) => `network-snapshot-${String(Math.floor(kimg)).padStart(6, '0')}.safetensors`;

export function saveNetworkSnapshot(path: string, ema: Module | Map<string, Tensor>, info: SnapshotInfo): void {
  writeSafetensors(path, ema instanceof Map ? ema : ema.stateDict(), {
    format: SNAPSHOT_FORMAT,
    network: JSON.stringify(info.network),
    dataset: JSON.stringify(info.dataset),
    kimg: String(info.kimg),
    ...(info.trainingOptions ? { training_options: JSON.stringify(info.trainingOptions) } : {}),
    ...(info.latent ? { latent: JSON.stringify(info.latent) } : {}),
  });
}

/** A snapshot file, or the newest snapshot in a run directory; `option` names the flag in errors (--network, --transfer, convert). */
export function resolveSnapshotPath(pathOrDir: string, option = '--network'): string {
  if (!existsSync(pathOrDir)) throw new Error(`${option}: ${pathOrDir} does not exist`);
  if (!statSync(pathOrDir).isDirectory()) return pathOrDir;
  // Ours (.safetensors) or an official run's (.pkl); the newest by kimg, ours first on a tie.
  const snaps = readdirSync(pathOrDir)
    .filter((f) => /^network-snapshot-\d{6}\.(safetensors|pkl)$/.test(f))
    .sort((a, b) => a.slice(17, 23).localeCompare(b.slice(17, 23)) || (a.endsWith('.pkl') ? -1 : 1));
  if (!snaps.length) throw new Error(`${option}: no network-snapshot-*.safetensors in ${pathOrDir} (nor an official network-snapshot-*.pkl)`);
  return join(pathOrDir, snaps[snaps.length - 1]!);
}

/** The info of an official snapshot pickle, in our terms. */
function officialSnapshotInfo(path: string, o: OfficialNetwork): SnapshotInfo {
  const kimg = /network-snapshot-(\d+)\.pkl$/.exec(path)?.[1];
  const channels = (o.config.out_channels ?? o.config.img_channels) as number;
  const datasetPath = typeof o.datasetKwargs.path === 'string' ? o.datasetKwargs.path : null;
  return {
    network: o.config as unknown as Record<string, unknown>,
    dataset: { name: datasetPath ? basename(datasetPath) : 'unknown', resolution: o.config.img_resolution, channels, labelDim: o.config.label_dim ?? 0 },
    kimg: kimg ? Number(kimg) : 0,
    trainingOptions: { source: 'official snapshot pickle', precond: o.className, loss: o.loss, dataset_kwargs: o.datasetKwargs },
  };
}

/** Reads our network snapshot (safetensors) or an official EDM / Patch Diffusion `network-snapshot-*.pkl` (read safely, nothing run). */
export function readNetworkSnapshot(path: string): { info: SnapshotInfo; weights: Map<string, Tensor> } {
  const kind = sniffFileKind(path);
  if (kind === 'pickle-text')
    throw new Error(`${path}: a pickle of protocol 0 or 1; snapshots are read from protocol 2 and later (what pickle and torch.save write by default), or from our .safetensors`);
  if (kind === 'pickle') {
    const official = loadOfficialNetwork(path);
    return { info: officialSnapshotInfo(path, official), weights: official.weights };
  }
  const { tensors, metadata } = readSafetensors(path);
  if (metadata.format !== SNAPSHOT_FORMAT) {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${path}: not a patch-diffusion network snapshot (format '${metadata.format ?? 'missing'}', expected '${SNAPSHOT_FORMAT}')`);
  }
  const parse = (key: string) => {
    try {
      return JSON.parse(metadata[key] ?? 'null');
    } catch {
      throw new Error(`${path}: snapshot metadata '${key}' is not valid JSON`);
    }
  };
  return {
    info: {
      network: parse('network'),
      dataset: parse('dataset'),
      kimg: Number(metadata.kimg),
      trainingOptions: parse('training_options') ?? undefined,
      latent: parse('latent') ?? undefined,
    },
    weights: tensors,
  };
}
