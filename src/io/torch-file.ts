// PyTorch's own file formats, read without Python and without running any
// pickle code (src/io/pickle.ts refuses every global not allowed here):
// - `torch.save` zip files (.pt/.pth, the default since torch 1.6): a folder
//   `<stem>/` holding `data.pkl` (protocol 2), whose tensors name their
//   storages by persistent ids ('storage', torch.FloatStorage, key, location,
//   numel), each storage's raw little-endian bytes in `<stem>/data/<key>`;
// - the legacy format (`_use_new_zipfile_serialization=False`, torch < 1.6,
//   e.g. pytorch-fid's published Inception weights): five pickles in a row
//   (magic number, protocol 1001, sys_info, the object, the storage keys),
//   then per storage an int64 element count and its bytes;
// - the same legacy stream embedded in a plain `pickle.dump` of a tensor
//   (`torch.storage._load_from_bytes`, how EDM snapshot pickles carry tensors).
// Either may be gzip-compressed. The measured facts behind this are in
// docs/file-formats.md.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { MAX_INFLATE_RATIO, ZipReader } from '../data/zip-reader.js';
import { tensorFromBytes } from '../tensor/raw-bytes.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { PickleError, PyDict, PyGlobal, PyTuple, describeValue, unpickle, type GlobalHandler } from './pickle.js';

/** A storage's element type as torch names it (int8/int16 widen to int32 when made into tensors). */
type SourceDType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const STORAGE_CLASSES: Record<string, SourceDType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
};
const TORCH_DTYPES: Record<string, SourceDType> = {
  float32: 'float32', float: 'float32', float64: 'float64', double: 'float64', float16: 'float16', half: 'float16',
  bfloat16: 'bfloat16', int64: 'int64', long: 'int64', int32: 'int32', int: 'int32', int16: 'int16', short: 'int16',
  int8: 'int8', uint8: 'uint8', bool: 'bool',
};
const ITEM_BYTES: Record<SourceDType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** One storage of a torch file: its element type, size and (once read) bytes. */
export class TorchStorage {
  data: Uint8Array | null = null;
  constructor(
    readonly dtype: SourceDType,
    readonly key: string,
    readonly location: string,
    readonly numel: number,
  ) {}
}

/** A tensor as a file describes it: a view (offset, shape, stride in elements) into a storage. Made into a Tensor by `toTensor`. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly dtype: SourceDType,
  ) {}
}

export class TorchFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TorchFileError';
  }
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

const intList = (v: unknown, what: string, where: string): number[] => {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items || !items.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
    throw new TorchFileError(`${where}: ${what} must be a tuple of non-negative integers, got ${describeValue(v)}`);
  return items as number[];
};

function rebuildTensor(args: readonly unknown[], where: string, dtype?: SourceDType): TorchTensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorage)) throw new TorchFileError(`${where}: expected a storage as the first argument, got ${describeValue(storage)}`);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new TorchFileError(`${where}: invalid storage offset ${describeValue(offset)}`);
  const shape = intList(size, 'the size', where);
  const strides = intList(stride, 'the stride', where);
  if (shape.length !== strides.length) throw new TorchFileError(`${where}: size [${shape}] and stride [${strides}] differ in length`);
  return new TorchTensorRef(storage, offset as number, shape, strides, dtype ?? storage.dtype);
}

/** The globals a torch file may name: tensor and parameter rebuilds, storage classes, OrderedDict, and a few builtins old pickles use. */
export function torchGlobals(): Map<string, GlobalHandler> {
  const g = new Map<string, GlobalHandler>();
  g.set('collections.OrderedDict', {
    call(args, where) {
      const d = new PyDict();
      if (args.length === 0) return d;
      const items = args[0] instanceof PyTuple ? args[0].items : args[0];
      if (args.length > 1 || !Array.isArray(items)) throw new TorchFileError(`${where}: OrderedDict arguments not understood`);
      for (const pair of items) {
        if (!(pair instanceof PyTuple) || pair.items.length !== 2) throw new TorchFileError(`${where}: OrderedDict items must be pairs`);
        d.set(pair.items[0], pair.items[1]);
      }
      return d;
    },
  });
  g.set('torch._utils._rebuild_tensor_v2', {
    call(args, where) {
      if (args.length < 6 || args.length > 7) throw new TorchFileError(`${where}: expected 6 or 7 arguments, got ${args.length}`);
      const meta = args[6];
      if (meta instanceof Map && [...meta.values()].some(Boolean))
        throw new TorchFileError(`${where}: tensors with conjugate/negative bits (${[...meta.keys()].join(', ')}) are not supported`);
      return rebuildTensor(args, where);
    },
  });
  g.set('torch._utils._rebuild_tensor_v3', {
    call(args, where) {
      const dtype = args[6];
      if (!(dtype instanceof PyGlobal) || !(dtype.qualifiedName in TORCH_DTYPE_GLOBALS))
        throw new TorchFileError(`${where}: unsupported tensor dtype ${describeValue(dtype)}`);
      return rebuildTensor(args, where, TORCH_DTYPE_GLOBALS[dtype.qualifiedName]);
    },
  });
  const parameter: GlobalHandler = {
    call(args, where) {
      if (!(args[0] instanceof TorchTensorRef)) throw new TorchFileError(`${where}: expected a tensor, got ${describeValue(args[0])}`);
      return args[0];
    },
  };
  g.set('torch._utils._rebuild_parameter', parameter);
  g.set('torch._utils._rebuild_parameter_with_state', parameter);
  g.set('torch.storage._load_from_bytes', {
    call(args, where) {
      if (!(args[0] instanceof Uint8Array)) throw new TorchFileError(`${where}: expected bytes, got ${describeValue(args[0])}`);
      const storage = readLegacyStream(args[0], `${where}(…)`, g).value;
      if (!(storage instanceof TorchStorage)) throw new TorchFileError(`${where}: the embedded stream holds ${describeValue(storage)}, expected a storage`);
      return storage;
    },
  });
  for (const name of [...Object.keys(STORAGE_CLASSES), 'UntypedStorage']) g.set(`torch.${name}`, {});
  for (const name of Object.keys(TORCH_DTYPE_GLOBALS)) g.set(name, {});
  g.set('builtins.set', { call: (args) => new Set(Array.isArray(args[0]) ? args[0] : []) });
  g.set('builtins.frozenset', { call: (args) => new Set(Array.isArray(args[0]) ? args[0] : []) });
  g.set('_codecs.encode', {
    // Protocol 2's way of writing bytes: _codecs.encode(latin-1 text, 'latin1').
    call(args, where) {
      if (typeof args[0] !== 'string' || (args[1] !== 'latin1' && args[1] !== 'latin-1'))
        throw new TorchFileError(`${where}: only latin1 text is accepted`);
      return Uint8Array.from(args[0], (c) => c.charCodeAt(0));
    },
  });
  return g;
}
const TORCH_DTYPE_GLOBALS: Record<string, SourceDType> = Object.fromEntries(Object.entries(TORCH_DTYPES).map(([k, v]) => [`torch.${k}`, v]));

/** Resolves ('storage', torch.XStorage, key, location, numel[, view_metadata]) to one TorchStorage per key. */
function storageResolver(storages: Map<string, TorchStorage>) {
  return (pid: unknown, where: string): TorchStorage => {
    const items = pid instanceof PyTuple ? pid.items : null;
    if (!items || items[0] !== 'storage' || items.length < 5)
      throw new TorchFileError(`${where}: unexpected persistent id ${describeValue(pid)}, expected ('storage', type, key, location, numel)`);
    const [, type, key, location, numel, view] = items;
    if (!(type instanceof PyGlobal)) throw new TorchFileError(`${where}: storage type ${describeValue(type)} is not a storage class`);
    const dtype = STORAGE_CLASSES[type.name];
    if (!dtype) throw new TorchFileError(`${where}: storage type ${type.qualifiedName} is not supported (supported: ${Object.keys(STORAGE_CLASSES).join(', ')})`);
    if (typeof key !== 'string' || typeof location !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0)
      throw new TorchFileError(`${where}: malformed storage reference ${describeValue(pid)}`);
    if (view !== undefined && view !== null) throw new TorchFileError(`${where}: storage views (legacy view_metadata) are not supported`);
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== dtype || known.numel !== numel) throw new TorchFileError(`${where}: storage '${key}' is referenced with two different types or sizes`);
      return known;
    }
    const s = new TorchStorage(dtype, key, location, numel as number);
    storages.set(key, s);
    return s;
  };
}

/** Reads one legacy torch.save stream (the five pickles and the storages after them). */
export function readLegacyStream(bytes: Uint8Array, source: string, globals: ReadonlyMap<string, GlobalHandler>): { value: unknown; end: number } {
  const simple = new Map<string, GlobalHandler>();
  let at = 0;
  const next = (g: ReadonlyMap<string, GlobalHandler>, persistentLoad?: (pid: unknown, where: string) => unknown) => {
    const r = unpickle(bytes, { source, globals: g, offset: at, ...(persistentLoad ? { persistentLoad } : {}) });
    at = r.end;
    return r.value;
  };
  const magic = next(simple);
  if (typeof magic !== 'bigint' || magic !== LEGACY_MAGIC) throw new TorchFileError(`${source}: not a torch.save file (its magic number is ${describeValue(magic)})`);
  const protocol = next(simple);
  if (protocol !== LEGACY_PROTOCOL) throw new TorchFileError(`${source}: legacy torch format version ${describeValue(protocol)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = next(simple);
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) throw new TorchFileError(`${source}: was saved on a big-endian machine; not supported`);
  const storages = new Map<string, TorchStorage>();
  const value = next(globals, storageResolver(storages));
  const keys = next(simple);
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new TorchFileError(`${source}: the storage key list is malformed`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys as string[]) {
    const s = storages.get(key);
    if (!s) throw new TorchFileError(`${source}: storage '${key}' is listed but never used`);
    if (at + 8 > bytes.length) throw new TorchFileError(`${source}: truncated before the data of storage '${key}'`);
    const count = Number(view.getBigInt64(at, true));
    if (count !== s.numel) throw new TorchFileError(`${source}: storage '${key}' holds ${count} elements, its reference says ${s.numel}`);
    const n = count * ITEM_BYTES[s.dtype];
    at += 8;
    if (at + n > bytes.length) throw new TorchFileError(`${source}: truncated: storage '${key}' needs ${n} bytes, ${bytes.length - at} remain`);
    s.data = bytes.subarray(at, at + n);
    at += n;
  }
  for (const s of storages.values()) if (!s.data) throw new TorchFileError(`${source}: storage '${s.key}' has no data`);
  return { value, end: at };
}

/** Reads a torch.save zip held in memory. */
function readZip(bytes: Uint8Array, source: string, globals: ReadonlyMap<string, GlobalHandler>): unknown {
  const zip = ZipReader.fromBuffer(bytes, source, { expected: 'a torch.save file' });
  const pkl = zip.entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name) || e.name === 'data.pkl');
  if (!pkl) throw new TorchFileError(`${source}: a zip without a data.pkl record is not a torch.save file`);
  const root = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
  const byName = new Map(zip.entries.map((e) => [e.name, e]));
  const order = byName.get(`${root}byteorder`);
  if (order && new TextDecoder().decode(zip.read(order)).trim() !== 'little') throw new TorchFileError(`${source}: big-endian torch files are not supported`);
  const storages = new Map<string, TorchStorage>();
  const { value } = unpickle(zip.read(pkl), { source: `${source}:${pkl.name}`, globals, persistentLoad: storageResolver(storages) });
  for (const s of storages.values()) {
    const entry = byName.get(`${root}data/${s.key}`);
    if (!entry) throw new TorchFileError(`${source}: storage record ${root}data/${s.key} is missing`);
    // The pickle says how many bytes each storage holds: an entry that declares more is refused before inflating.
    s.data = zip.read(entry, { maxBytes: s.numel * ITEM_BYTES[s.dtype] });
  }
  return value;
}

/**
 * Reads a torch.save file (zip or legacy, optionally gzipped) or its bytes.
 * Returns the pickled object with tensors as TorchTensorRef; `globals`
 * replaces the default allow-list (torchGlobals()) for files holding more.
 */
export function readTorchFile(pathOrBytes: string | Uint8Array, options: { source?: string; globals?: ReadonlyMap<string, GlobalHandler> } = {}): unknown {
  const source = options.source ?? (typeof pathOrBytes === 'string' ? pathOrBytes : '<buffer>');
  let bytes: Uint8Array;
  try {
    bytes = typeof pathOrBytes === 'string' ? readFileSync(pathOrBytes) : pathOrBytes;
  } catch (e) {
    throw new TorchFileError(`cannot read ${source}: ${(e as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    // Weights compress little (about 1.1×): gigabytes from a few megabytes are a bomb, stopped at the
    // zip reader's ratio (PD_MAX_INFLATE_RATIO) rather than inflated.
    const limit = Math.max(1 << 26, bytes.length * MAX_INFLATE_RATIO);
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: limit });
    } catch (e) {
      const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw new TorchFileError(
        tooBig
          ? `${source}: the gzip data inflates to more than ${limit} bytes (${MAX_INFLATE_RATIO}× its ${bytes.length} compressed bytes): a decompression bomb, or not weights`
          : `${source}: corrupt gzip data (${(e as Error).message})`,
      );
    }
  }
  const globals = options.globals ?? torchGlobals();
  try {
    if (bytes[0] === 0x50 && bytes[1] === 0x4b) return readZip(bytes, source, globals);
    if (bytes[0] === 0x80) return readLegacyStream(bytes, source, globals).value;
  } catch (e) {
    if (e instanceof PickleError || e instanceof TorchFileError) throw e;
    throw new TorchFileError(`${source}: ${(e as Error).message}`);
  }
  throw new TorchFileError(`${source}: not a torch.save file (neither a zip nor a pickle; first bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`);
}

/** Makes a contiguous CPU tensor of a file's tensor, checking that its view lies inside its storage. */
export function toTensor(ref: TorchTensorRef, where: string): Tensor {
  const { storage, offset, shape, stride } = ref;
  const item = ITEM_BYTES[ref.dtype];
  if (ref.dtype !== storage.dtype) throw new TorchFileError(`${where}: a ${ref.dtype} view of a ${storage.dtype} storage is not supported`);
  if (!storage.data) throw new TorchFileError(`${where}: storage '${storage.key}' has no data`);
  if (storage.data.length < storage.numel * item)
    throw new TorchFileError(`${where}: storage '${storage.key}' has ${storage.data.length} bytes, fewer than its ${storage.numel} ${storage.dtype} elements need`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count > 0) {
    const last = offset + shape.reduce((s, d, i) => s + (d - 1) * stride[i]!, 0);
    if (last >= storage.numel)
      throw new TorchFileError(`${where}: the tensor [${shape}] (offset ${offset}, stride [${stride}]) reaches element ${last} of a storage of ${storage.numel}: it points past the end`);
  }
  const out = new Uint8Array(count * item);
  const src = storage.data;
  const contiguous = shape.every((_, i) => shape[i] === 1 || stride[i] === shape.slice(i + 1).reduce((a, b) => a * b, 1));
  if (contiguous) out.set(src.subarray(offset * item, (offset + count) * item));
  else {
    const index = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < count; k++) {
      let e = offset;
      for (let d = 0; d < shape.length; d++) e += index[d]! * stride[d]!;
      out.set(src.subarray(e * item, (e + 1) * item), k * item);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++index[d]! < shape[d]!) break;
        index[d] = 0;
      }
    }
  }
  let dtype = ref.dtype as DType;
  let data = out;
  if (ref.dtype === 'int16' || ref.dtype === 'int8') {
    const wide = new Int32Array(count);
    const v = new DataView(out.buffer);
    for (let k = 0; k < count; k++) wide[k] = ref.dtype === 'int16' ? v.getInt16(2 * k, true) : v.getInt8(k);
    data = new Uint8Array(wide.buffer);
    dtype = 'int32';
  }
  return tensorFromBytes(data, shape, dtype);
}

/**
 * A state dict (name → tensor) from a torch file's top object: an
 * OrderedDict/dict of tensors, or one nested under a key such as
 * 'state_dict', 'model' or 'ema' when that is the only dict of tensors there.
 */
export function stateDictOf(value: unknown, source: string): Map<string, Tensor> {
  let dict = value;
  if (dict instanceof Map && ![...dict.values()].some((v) => v instanceof TorchTensorRef)) {
    const nested = ['state_dict', 'model', 'ema', 'net'].map((k) => dict instanceof Map ? dict.get(k) : undefined).find((v) => v instanceof Map);
    if (nested) dict = nested;
  }
  if (!(dict instanceof Map)) throw new TorchFileError(`${source}: holds ${describeValue(value)}, expected a state dict (names → tensors)`);
  const out = new Map<string, Tensor>();
  try {
    for (const [k, v] of dict) {
      if (typeof k !== 'string') throw new TorchFileError(`${source}: state dict key ${describeValue(k)} is not a string`);
      if (!(v instanceof TorchTensorRef)) throw new TorchFileError(`${source}: '${k}' holds ${describeValue(v)}, expected a tensor`);
      out.set(k, toTensor(v, `${source}: '${k}'`));
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}
