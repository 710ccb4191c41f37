// The official snapshots: `network-snapshot-*.pkl` as Patch Diffusion's and
// EDM's training_loop.py write them (`pickle.dump(dict(ema, loss_fn,
// augment_pipe, dataset_kwargs))`), read safely into our networks.
//
// Every network object in them is pickled through EDM's
// torch_utils.persistence, as (class name, full source of networks.py, the
// object's __dict__); loading normally execs that source. Here the source is
// kept as text and never run: the class name and the constructor kwargs
// (`_init_kwargs`) choose one of our own implementations, and the weights come
// from the module tree's `_parameters` / `_buffers`. Tensors are embedded as
// legacy torch.save streams (src/io/torch-file.ts). The layout is described in
// docs/file-formats.md.
import { readFileSync } from 'node:fs';
import { BUILD_STATE, PyDict, PyTuple, describeValue, unpickle, type GlobalHandler } from '../io/pickle.js';
import { TorchTensorRef, toTensor, torchGlobals } from '../io/torch-file.js';
import type { Tensor } from '../tensor/tensor.js';
import { parseNetworkConfig, type NetworkConfig } from './config.js';
import type { PrecondKind } from './precond.js';

export class OfficialSnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OfficialSnapshotError';
  }
}

/** An object rebuilt by torch_utils.persistence: its class name and state; the module source is kept as text only. */
export class PersistentObject {
  constructor(
    readonly className: string,
    readonly state: PyDict,
    readonly moduleSource: string,
  ) {}
}

/** A plain torch.nn container or activation (ModuleDict, Sequential, ModuleList, SiLU) with its __dict__. */
export class TorchModule {
  state: PyDict = new PyDict();
  constructor(readonly className: string) {}
  [BUILD_STATE](state: unknown, where: string): TorchModule {
    if (!(state instanceof PyDict)) throw new OfficialSnapshotError(`${where}: expected a dict as the module state, got ${describeValue(state)}`);
    this.state = state;
    return this;
  }
}

/** numpy.dtype('f8'…) as numpy pickles it: REDUCE(dtype, (code, False, True)) then BUILD(state). */
class NumpyDType {
  constructor(readonly code: string) {}
  [BUILD_STATE](state: unknown): NumpyDType {
    const order = state instanceof PyTuple ? state.items[1] : undefined;
    if (order === '>') throw new OfficialSnapshotError(`big-endian numpy scalars are not supported`);
    return this;
  }
}

const NUMPY_SCALARS: Record<string, (v: DataView) => number | bigint> = {
  f8: (v) => v.getFloat64(0, true), f4: (v) => v.getFloat32(0, true), i8: (v) => v.getBigInt64(0, true), i4: (v) => v.getInt32(0, true),
  u1: (v) => v.getUint8(0), b1: (v) => v.getUint8(0),
};

/** The allow-list for snapshot pickles: torch's own plus persistence, nn containers, numpy scalars and EasyDict. */
export function snapshotGlobals(): Map<string, GlobalHandler> {
  const g = torchGlobals();
  g.set('torch_utils.persistence._reconstruct_persistent_obj', {
    call(args, where) {
      const meta = args[0];
      if (!(meta instanceof PyDict)) throw new OfficialSnapshotError(`${where}: expected the persistence meta dict, got ${describeValue(meta)}`);
      const type = meta.get('type');
      const className = meta.get('class_name');
      const state = meta.get('state');
      if (type !== 'class' || typeof className !== 'string' || !(state instanceof PyDict))
        throw new OfficialSnapshotError(`${where}: a persistent object of type ${describeValue(type)} (class ${describeValue(className)}) is not supported`);
      const src = meta.get('module_src');
      return new PersistentObject(className, state, typeof src === 'string' ? src : '');
    },
  });
  for (const name of ['container.ModuleDict', 'container.Sequential', 'container.ModuleList', 'activation.SiLU'])
    g.set(`torch.nn.modules.${name}`, { create: () => new TorchModule(name.split('.')[1]!) });
  g.set('numpy.dtype', {
    call(args, where) {
      if (typeof args[0] !== 'string') throw new OfficialSnapshotError(`${where}: a numpy dtype code must be a string`);
      return new NumpyDType(args[0]);
    },
  });
  const scalar: GlobalHandler = {
    call(args, where) {
      const [dtype, raw] = args;
      if (!(dtype instanceof NumpyDType) || !(raw instanceof Uint8Array)) throw new OfficialSnapshotError(`${where}: malformed numpy scalar`);
      const decode = NUMPY_SCALARS[dtype.code];
      if (!decode) throw new OfficialSnapshotError(`${where}: numpy scalars of dtype '${dtype.code}' are not supported`);
      const v = decode(new DataView(raw.buffer, raw.byteOffset, raw.byteLength));
      return typeof v === 'bigint' ? Number(v) : v;
    },
  };
  g.set('numpy.core.multiarray.scalar', scalar);
  g.set('numpy._core.multiarray.scalar', scalar);
  g.set('dnnlib.util.EasyDict', { create: () => new PyDict(), call: () => new PyDict() });
  return g;
}

/** What a snapshot pickle holds, with its network objects still as persistence records. */
export interface OfficialSnapshotContents {
  ema: PersistentObject;
  lossFn: PersistentObject | null;
  augmentPipe: PersistentObject | null;
  datasetKwargs: Record<string, unknown>;
}

/** Reads (never runs) an official `network-snapshot-*.pkl`. */
export function readOfficialSnapshot(path: string): OfficialSnapshotContents {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new OfficialSnapshotError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const { value } = unpickle(bytes, { source: path, globals: snapshotGlobals() });
  if (!(value instanceof PyDict)) throw new OfficialSnapshotError(`${path}: holds ${describeValue(value)}, expected the snapshot dict (ema, loss_fn, augment_pipe, dataset_kwargs)`);
  const ema = value.get('ema');
  if (!(ema instanceof PersistentObject))
    throw new OfficialSnapshotError(`${path}: 'ema' is ${describeValue(ema)}, expected a network saved by EDM/Patch Diffusion's training loop (keys: ${[...value.keys()].join(', ')})`);
  const lossFn = value.get('loss_fn');
  const augmentPipe = value.get('augment_pipe');
  const dk = value.get('dataset_kwargs');
  return {
    ema,
    lossFn: lossFn instanceof PersistentObject ? lossFn : null,
    augmentPipe: augmentPipe instanceof PersistentObject ? augmentPipe : null,
    datasetKwargs: dk instanceof Map ? toPlain(dk) as Record<string, unknown> : {},
  };
}

/** Python containers as JSON-like JS values (tuples → arrays, dicts with string keys → objects). */
export function toPlain(v: unknown): unknown {
  if (v instanceof PyTuple) return v.items.map(toPlain);
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toPlain(x)]));
  return v;
}

/** Flattened parameters and persistent buffers of a module tree, with PyTorch's dotted names. */
export function moduleTensors(root: PersistentObject | TorchModule, source: string): Map<string, TorchTensorRef> {
  const out = new Map<string, TorchTensorRef>();
  const walk = (m: PersistentObject | TorchModule, prefix: string) => {
    const state = m.state;
    const params = state.get('_parameters');
    const buffers = state.get('_buffers');
    const nonPersistent = state.get('_non_persistent_buffers_set');
    const skip = nonPersistent instanceof Set ? nonPersistent : new Set();
    const add = (dict: unknown, filter: (k: string) => boolean) => {
      if (!(dict instanceof Map)) return;
      for (const [k, t] of dict) {
        if (t === null || !filter(String(k))) continue;
        if (!(t instanceof TorchTensorRef)) throw new OfficialSnapshotError(`${source}: '${prefix}${String(k)}' is ${describeValue(t)}, expected a tensor`);
        out.set(`${prefix}${String(k)}`, t);
      }
    };
    add(params, () => true);
    add(buffers, (k) => !skip.has(k));
    const children = state.get('_modules');
    if (children instanceof Map)
      for (const [k, child] of children) {
        if (child === null) continue;
        if (!(child instanceof PersistentObject) && !(child instanceof TorchModule))
          throw new OfficialSnapshotError(`${source}: submodule '${prefix}${String(k)}' is ${describeValue(child)}, not a module this reader knows`);
        walk(child, `${prefix}${String(k)}.`);
      }
  };
  walk(root, '');
  return out;
}

/** The preconditioners we implement, and the constructor signature of each (for positional `_init_args`). */
const PRECONDS: Record<string, { kind: PrecondKind; patch: boolean; positional: string[] }> = {
  Patch_EDMPrecond: { kind: 'edm', patch: true, positional: ['img_resolution', 'img_channels', 'out_channels', 'label_dim', 'use_fp16', 'sigma_min', 'sigma_max', 'sigma_data', 'model_type'] },
  EDMPrecond: { kind: 'edm', patch: false, positional: ['img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_min', 'sigma_max', 'sigma_data', 'model_type'] },
  VPPrecond: { kind: 'vp', patch: false, positional: ['img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'beta_d', 'beta_min', 'M', 'epsilon_t', 'model_type'] },
  VEPrecond: { kind: 've', patch: false, positional: ['img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_min', 'sigma_max', 'model_type'] },
};
/** The constructor arguments each kind keeps as attributes (read from the state when not in the arguments). */
const PRECOND_KEYS: Record<PrecondKind, readonly string[]> = {
  edm: ['sigma_min', 'sigma_max', 'sigma_data'],
  vp: ['beta_d', 'beta_min', 'M', 'epsilon_t'],
  ve: ['sigma_min', 'sigma_max'],
};
const UNET_POSITIONAL = ['img_resolution', 'in_channels', 'out_channels', 'label_dim', 'augment_dim'];
const UNET_KWARGS: Record<string, readonly string[]> = {
  SongUNet: ['model_channels', 'channel_mult', 'channel_mult_emb', 'num_blocks', 'attn_resolutions', 'dropout', 'label_dropout', 'embedding_type',
    'channel_mult_noise', 'encoder_type', 'decoder_type', 'resample_filter', 'implicit_mlp'],
  DhariwalUNet: ['model_channels', 'channel_mult', 'channel_mult_emb', 'num_blocks', 'attn_resolutions', 'dropout', 'label_dropout'],
};

/** Constructor arguments of a persistent object: `_init_args` named by `positional`, then `_init_kwargs`. */
function initArguments(obj: PersistentObject, positional: readonly string[], source: string): Record<string, unknown> {
  const args = obj.state.get('_init_args');
  const kwargs = obj.state.get('_init_kwargs');
  const out: Record<string, unknown> = {};
  const list = args instanceof PyTuple ? args.items : Array.isArray(args) ? args : [];
  if (list.length > positional.length) throw new OfficialSnapshotError(`${source}: ${obj.className} was built with ${list.length} positional arguments; at most ${positional.length} are known`);
  list.forEach((v, i) => (out[positional[i]!] = toPlain(v)));
  if (kwargs instanceof Map) for (const [k, v] of kwargs) out[String(k)] = toPlain(v);
  return out;
}

/** The network config (our schema, the official names) of a snapshot's `ema` object. */
export function officialNetworkConfig(ema: PersistentObject, source: string): NetworkConfig {
  const precond = PRECONDS[ema.className];
  if (!precond)
    throw new OfficialSnapshotError(
      `${source}: the network class '${ema.className}' is not supported (supported: ${Object.keys(PRECONDS).join(', ')}; ` +
        `iDDPMPrecond is not implemented)`,
    );
  const pk = initArguments(ema, precond.positional, source);
  const modules = ema.state.get('_modules');
  const unet = modules instanceof Map ? modules.get('model') : undefined;
  if (!(unet instanceof PersistentObject)) throw new OfficialSnapshotError(`${source}: ${ema.className} has no 'model' network`);
  if (!(unet.className in UNET_KWARGS))
    throw new OfficialSnapshotError(`${source}: the UNet class '${unet.className}' is not supported (supported: ${Object.keys(UNET_KWARGS).join(', ')})`);
  const uk = initArguments(unet, UNET_POSITIONAL, source);
  const allowed = new Set([...UNET_POSITIONAL, ...UNET_KWARGS[unet.className]!]);
  const unknown = Object.keys(uk).filter((k) => !allowed.has(k));
  if (unknown.length)
    throw new OfficialSnapshotError(`${source}: ${unet.className} option(s) ${unknown.map((k) => `${k}=${JSON.stringify(uk[k])}`).join(', ')} are not supported by this implementation`);
  const raw: Record<string, unknown> = {
    precond: precond.kind,
    model_type: unet.className,
    img_resolution: uk.img_resolution,
    img_channels: uk.in_channels,
    out_channels: uk.out_channels,
    label_dim: uk.label_dim ?? 0,
    use_fp16: pk.use_fp16 ?? false,
  };
  for (const key of PRECOND_KEYS[precond.kind]) {
    const value = toPlain(pk[key] ?? ema.state.get(key));
    if (value !== undefined && value !== null) raw[key] = key === 'sigma_max' && value === Infinity ? null : value;
  }
  for (const k of ['augment_dim', ...UNET_KWARGS[unet.className]!]) if (uk[k] !== undefined) raw[k] = uk[k];
  // The preconditioner and its UNet must agree on the geometry (the UNet's arguments are what was built).
  if (pk.img_resolution !== undefined && pk.img_resolution !== uk.img_resolution)
    throw new OfficialSnapshotError(`${source}: ${ema.className}.img_resolution ${String(pk.img_resolution)} differs from its UNet's ${String(uk.img_resolution)}`);
  if (precond.patch && uk.in_channels === uk.out_channels)
    throw new OfficialSnapshotError(`${source}: a Patch_EDMPrecond whose UNet takes as many channels as it returns has no coordinate channels`);
  if (!precond.patch && uk.in_channels !== uk.out_channels)
    throw new OfficialSnapshotError(`${source}: an ${ema.className} whose UNet takes ${String(uk.in_channels)} channels and returns ${String(uk.out_channels)} is not supported`);
  try {
    return parseNetworkConfig(raw);
  } catch (e) {
    throw new OfficialSnapshotError(`${source}: ${(e as Error).message}`);
  }
}

export interface OfficialNetwork {
  /** The preconditioner's class, e.g. 'Patch_EDMPrecond'. */
  className: string;
  config: NetworkConfig;
  /** The EMA network's state dict (official names), as CPU tensors; the caller disposes them. */
  weights: Map<string, Tensor>;
  /** train.py's dataset_kwargs as saved (resolution, path, use_labels, …). */
  datasetKwargs: Record<string, unknown>;
  /** The loss's class and its saved state (P_mean, P_std, sigma_data…), when present. */
  loss: { className: string; state: Record<string, unknown> } | null;
}

/** Reads an official snapshot into a network config and weights. */
export function loadOfficialNetwork(path: string): OfficialNetwork {
  const snap = readOfficialSnapshot(path);
  const config = officialNetworkConfig(snap.ema, path);
  if (snap.augmentPipe && !config.augment_dim)
    throw new OfficialSnapshotError(`${path}: has an augment pipe but its network takes no augment labels`);
  const refs = moduleTensors(snap.ema, path);
  const weights = new Map<string, Tensor>();
  try {
    for (const [name, ref] of refs) weights.set(name, toTensor(ref, `${path}: '${name}'`));
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    throw e;
  }
  const lossState = snap.lossFn ? Object.fromEntries([...snap.lossFn.state].filter(([k]) => !String(k).startsWith('_')).map(([k, v]) => [String(k), toPlain(v)])) : null;
  return {
    className: snap.ema.className,
    config,
    weights,
    datasetKwargs: snap.datasetKwargs,
    loss: snap.lossFn ? { className: snap.lossFn.className, state: lossState! } : null,
  };
}
