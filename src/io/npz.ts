// NumPy's .npy and .npz files, the format of EDM's and pytorch-fid's FID
// reference statistics (`mu`, `sigma`): .npz is a zip of .npy records,
// stored (np.savez, EDM) or deflated (np.savez_compressed, pytorch-fid
// --save-stats); .npy is a magic string, a version, a Python-literal header
// {'descr': '<f8', 'fortran_order': False, 'shape': (2048,)} and the raw data.
// Object arrays ('|O') are pickles and are refused.
import { ZipReader } from '../data/zip-reader.js';
import { storedZipChunks } from '../data/zip-writer.js';
import { writeFileAtomic } from './atomic.js';

export type NpyDType = 'float64' | 'float32' | 'int64' | 'int32' | 'uint8' | 'bool';

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  /** Row-major (C-order) values. */
  data: Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;
}

const DESCR: Record<string, { dtype: NpyDType; bytes: number }> = {
  '<f8': { dtype: 'float64', bytes: 8 }, '<f4': { dtype: 'float32', bytes: 4 }, '<i8': { dtype: 'int64', bytes: 8 },
  '<i4': { dtype: 'int32', bytes: 4 }, '|u1': { dtype: 'uint8', bytes: 1 }, '|b1': { dtype: 'bool', bytes: 1 },
};
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export class NpyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NpyError';
  }
}

function typed(dtype: NpyDType, bytes: Uint8Array): NpyArray['data'] {
  const copy = new Uint8Array(bytes); // aligned
  switch (dtype) {
    case 'float64': return new Float64Array(copy.buffer);
    case 'float32': return new Float32Array(copy.buffer);
    case 'int64': return new BigInt64Array(copy.buffer);
    case 'int32': return new Int32Array(copy.buffer);
    default: return copy;
  }
}

/** Parses one .npy record; `source` names it in errors. */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const fail = (why: string): never => {
    throw new NpyError(`${source}: not a readable .npy array: ${why}`);
  };
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) fail('missing the \\x93NUMPY magic');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major < 1 || major > 3) fail(`format version ${major}.${bytes[7]} is unknown`);
  const headerLen = major === 1 ? view.getUint16(8, true) : bytes.length >= 12 ? view.getUint32(8, true) : fail('truncated header');
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length) fail('truncated header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) fail(`header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  const kind = DESCR[descr!];
  if (!kind) fail(`dtype '${descr}' is not supported (supported: ${Object.keys(DESCR).join(', ')}; object arrays are pickles and never read)`);
  const shape = shapeText!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`shape (${shapeText}) is not a tuple of sizes`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const need = count * kind!.bytes;
  if (bytes.length - dataStart < need) fail(`truncated: ${need} data bytes expected, ${bytes.length - dataStart} present`);
  let data = typed(kind!.dtype, bytes.subarray(dataStart, dataStart + need));
  if (fortran === 'True' && shape.length > 1) data = toRowMajor(data, shape);
  return { dtype: kind!.dtype, shape, data };
}

/** Column-major values of `shape` reordered to row-major. */
function toRowMajor<T extends NpyArray['data']>(data: T, shape: number[]): T {
  const out = new (data.constructor as { new (n: number): T })(data.length);
  const n = shape.length;
  const index = new Array<number>(n).fill(0);
  for (let k = 0; k < data.length; k++) {
    // k runs over row-major positions; find its column-major source.
    let src = 0;
    let stride = 1;
    for (let d = 0; d < n; d++) {
      src += index[d]! * stride;
      stride *= shape[d]!;
    }
    (out as unknown as number[])[k] = (data as unknown as number[])[src]!;
    for (let d = n - 1; d >= 0; d--) {
      if (++index[d]! < shape[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Reads every array of an .npz file (stored or deflated), by name without '.npy'. */
export function readNpz(path: string): Map<string, NpyArray> {
  const zip = ZipReader.open(path, { expected: 'a NumPy .npz file (a zip of .npy arrays)' });
  try {
    const out = new Map<string, NpyArray>();
    for (const e of zip.entries) {
      if (!e.name.endsWith('.npy')) continue;
      out.set(e.name.slice(0, -4), parseNpy(zip.read(e), `${path}:${e.name}`));
    }
    if (!out.size) throw new NpyError(`${path}: holds no .npy arrays`);
    return out;
  } finally {
    zip.close();
  }
}

/** One .npy record (format 1.0, C order, little-endian). */
export function encodeNpy(a: NpyArray): Uint8Array {
  const descr = Object.entries(DESCR).find(([, k]) => k.dtype === a.dtype)![0];
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces to a multiple of 64 bytes including the 10-byte preamble, ending in '\n' (as numpy does).
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const count = a.shape.reduce((x, y) => x * y, 1);
  if (a.data.length !== count) throw new NpyError(`encodeNpy: ${a.data.length} values for shape [${a.shape}]`);
  const body = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const out = new Uint8Array(10 + header.length + body.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(body, 10 + header.length);
  return out;
}

/** Writes arrays as an uncompressed .npz (what np.savez writes), atomically. */
export function writeNpz(path: string, arrays: Map<string, NpyArray> | Record<string, NpyArray>): void {
  const list = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  writeFileAtomic(path, storedZipChunks(list.map(([name, a]) => [`${name}.npy`, encodeNpy(a)])));
}
