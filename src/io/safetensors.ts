// The safetensors format (the format of the reference vectors and of our
// snapshots): an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data.
// Reading validates everything before touching the data, so a truncated or
// malformed file is rejected with a message naming the file and the problem.
// Every file we write carries the SHA-256 of its data section in its
// metadata (`data_sha256`, a string like any other, so other readers ignore
// it), and every read checks it: a flipped byte in a training state is an
// error, not damaged weights. Files without it (older ones, other tools')
// load as before.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tensorBytes, tensorFromBytes } from '../tensor/raw-bytes.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { writeFileAtomic } from './atomic.js';

const FORMAT_TO_DTYPE: Record<string, DType> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool',
};
const DTYPE_TO_FORMAT = Object.fromEntries(Object.entries(FORMAT_TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;
const BYTES: Record<DType, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };

/** Headers larger than this are taken as corruption (the reference implementation uses the same bound). */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  dtype: DType;
  shape: number[];
  /** Byte range in the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

class FormatError extends Error {}

/** The metadata key of the data section's SHA-256 (hex). */
export const CHECKSUM_KEY = 'data_sha256';

/** A file whose data does not match the checksum it was written with. */
export class ChecksumError extends Error {
  readonly code = 'PD_CHECKSUM_MISMATCH';
  constructor(readonly file: string, expected: string, actual: string) {
    super(`${file}: the data does not match the checksum it was written with (sha256 ${actual.slice(0, 12)}…, recorded ${expected.slice(0, 12)}…): the file is corrupt`);
    this.name = 'ChecksumError';
  }
}

/** Checks the data against its recorded checksum; returns the metadata without it (a detail of the file, not of its content). */
function verifyChecksum(bytes: Uint8Array, dataStart: number, metadata: Record<string, string>, source: string): Record<string, string> {
  const { [CHECKSUM_KEY]: expected, ...rest } = metadata;
  if (expected === undefined) return metadata;
  const actual = createHash('sha256').update(bytes.subarray(dataStart)).digest('hex');
  if (actual !== expected) throw new ChecksumError(source, expected, actual);
  return rest;
}

function parseHeader(bytes: Uint8Array, source: string): { entries: Map<string, TensorEntry>; metadata: Record<string, string>; dataStart: number } {
  const fail = (why: string): never => {
    throw new FormatError(`${source}: not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} is implausible (corrupt or not safetensors)`);
  if (8 + headerLen > bytes.length) fail(`header says ${headerLen} bytes but only ${bytes.length - 8} follow (truncated?)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Object.values(raw).some((v) => typeof v !== 'string'))
        fail('__metadata__ must map strings to strings');
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e?.dtype === 'string' ? FORMAT_TO_DTYPE[e.dtype] : undefined;
    if (!dtype) fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1])
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    const [begin, end] = offs as [number, number];
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * BYTES[dtype!];
    if (end - begin !== expected) fail(`tensor '${name}' (${dtype} ${JSON.stringify(shape)}) needs ${expected} bytes but its range holds ${end - begin}`);
    if (end > dataLen) fail(`tensor '${name}' ends at byte ${end} but the data section has ${dataLen} bytes (truncated?)`);
    entries.set(name, { dtype: dtype!, shape, begin, end });
  }
  // The data ranges must tile the data section exactly: no overlap, no hole.
  // Ties on `begin` put empty tensors first, or a legal empty tensor listed after its neighbour reads as an overlap.
  const ranges = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const r of ranges) {
    if (r.begin !== cursor) fail(`tensor data ranges overlap or leave a gap at byte ${cursor}`);
    cursor = r.end;
  }
  if (cursor !== dataLen) fail(`the data section has ${dataLen - cursor} trailing bytes no tensor uses`);
  return { entries, metadata, dataStart };
}

/** Decodes safetensors bytes; `source` names the file in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContents {
  const parsed = parseHeader(bytes, source);
  const { entries, dataStart } = parsed;
  const metadata = verifyChecksum(bytes, dataStart, parsed.metadata, source);
  const tensors = new Map<string, Tensor>();
  for (const [name, e] of entries) {
    // Copy into an aligned buffer: the data section has no alignment guarantee.
    const data = new Uint8Array(e.end - e.begin);
    data.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(name, tensorFromBytes(data, e.shape, e.dtype));
  }
  return { tensors, metadata };
}

/** Reads a .safetensors file into CPU tensors. */
export function readSafetensors(path: string): SafetensorsContents {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}

/** Lists names, dtypes and shapes without creating tensors. */
export function inspectSafetensors(path: string): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  const bytes = readFileSync(path);
  const { entries, metadata, dataStart } = parseHeader(bytes, path);
  return { entries, metadata: verifyChecksum(bytes, dataStart, metadata, path) };
}

/** Encodes named tensors (any device; copied to the CPU) with string metadata. */
export function encodeSafetensors(tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  // The metadata first in the header (its value is set once the data's checksum is known).
  const header: Record<string, unknown> = { __metadata__: null };
  const chunks: Uint8Array[] = [];
  const hash = createHash('sha256');
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new Error(`safetensors: '__metadata__' is reserved and cannot name a tensor`);
    const data = tensorBytes(t);
    header[name] = { dtype: DTYPE_TO_FORMAT[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + data.length] };
    offset += data.length;
    chunks.push(data);
    hash.update(data);
  }
  header.__metadata__ = { ...metadata, [CHECKSUM_KEY]: hash.digest('hex') };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align the data section to 8 bytes
  const headerBytes = new TextEncoder().encode(json);
  const lenBytes = new Uint8Array(8);
  new DataView(lenBytes.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  return [lenBytes, headerBytes, ...chunks];
}

/** Writes a .safetensors file atomically (temporary file, then rename). */
export function writeSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
