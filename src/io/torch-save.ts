// Writing a state dict the way torch.save does (zip format, loadable by
// `torch.load(path)` with or without weights_only, torch 1.6 and later), so
// a network trained here can go back to the PyTorch world:
//   <stem>/data.pkl   protocol-2 pickle: OrderedDict(name → _rebuild_tensor_v2(
//                     persistent storage id, offset 0, size, stride, False, OrderedDict()))
//   <stem>/data/<k>   each tensor's bytes (little-endian, contiguous), 64-byte aligned
//   <stem>/version    "3"
//   <stem>/byteorder  "little"
// The pickle uses only the opcodes and globals torch's weights-only unpickler accepts.
import { basename } from 'node:path';
import { storedZipChunks } from '../data/zip-writer.js';
import { tensorBytes } from '../tensor/raw-bytes.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { writeFileAtomic } from './atomic.js';

const STORAGE_CLASS: Record<DType, string> = {
  float32: 'FloatStorage', float64: 'DoubleStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  int64: 'LongStorage', int32: 'IntStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
};

/** A minimal protocol-2 pickle encoder for the values a state dict needs. */
class PickleWriter {
  private readonly parts: Uint8Array[] = [];
  private readonly enc = new TextEncoder();
  private byte(...b: number[]) {
    this.parts.push(Uint8Array.from(b));
  }
  proto() {
    this.byte(0x80, 2);
  }
  stop() {
    this.byte(0x2e);
  }
  mark() {
    this.byte(0x28);
  }
  tuple() {
    this.byte(0x74);
  }
  emptyTuple() {
    this.byte(0x29);
  }
  reduce() {
    this.byte(0x52);
  }
  setItems() {
    this.byte(0x75);
  }
  binPersId() {
    this.byte(0x51);
  }
  bool(v: boolean) {
    this.byte(v ? 0x88 : 0x89);
  }
  global(module: string, name: string) {
    this.byte(0x63);
    this.parts.push(this.enc.encode(`${module}\n${name}\n`));
  }
  str(s: string) {
    const b = this.enc.encode(s);
    const h = new Uint8Array(5);
    h[0] = 0x58; // BINUNICODE
    new DataView(h.buffer).setUint32(1, b.length, true);
    this.parts.push(h, b);
  }
  int(v: number) {
    if (!Number.isSafeInteger(v)) throw new Error(`pickle: ${v} is not an integer`);
    if (v >= 0 && v < 256) return this.byte(0x4b, v); // BININT1
    if (v >= 0 && v < 65536) return this.byte(0x4d, v & 0xff, v >> 8); // BININT2
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      const h = new Uint8Array(5);
      h[0] = 0x4a; // BININT
      new DataView(h.buffer).setInt32(1, v, true);
      return this.parts.push(h);
    }
    const h = new Uint8Array(10);
    h[0] = 0x8a; // LONG1, 8 bytes two's complement
    h[1] = 8;
    new DataView(h.buffer).setBigInt64(2, BigInt(v), true);
    this.parts.push(h);
  }
  intTuple(xs: readonly number[]) {
    this.mark();
    for (const x of xs) this.int(x);
    this.tuple();
  }
  emptyOrderedDict() {
    this.global('collections', 'OrderedDict');
    this.emptyTuple();
    this.reduce();
  }
  bytes(): Uint8Array[] {
    return this.parts;
  }
}

/** The torch.save (zip) bytes of a state dict; tensors are copied to the CPU and made contiguous. */
export function encodeTorchStateDict(tensors: Map<string, Tensor>, archiveName = 'archive'): Uint8Array[] {
  const p = new PickleWriter();
  const storages: [string, Uint8Array][] = [];
  p.proto();
  p.emptyOrderedDict();
  p.mark();
  let key = 0;
  for (const [name, t] of tensors) {
    const cls = STORAGE_CLASS[t.dtype];
    if (!cls) throw new Error(`torch.save: tensor '${name}' has dtype ${t.dtype}, which has no torch storage class here`);
    const data = tensorBytes(t);
    const shape = t.shape;
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const numel = shape.reduce((a, b) => a * b, 1);
    const k = String(key++);
    storages.push([`${archiveName}/data/${k}`, data]);
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    p.mark();
    p.str('storage');
    p.global('torch', cls);
    p.str(k);
    p.str('cpu');
    p.int(numel);
    p.tuple();
    p.binPersId();
    p.int(0);
    p.intTuple(shape);
    p.intTuple(stride);
    p.bool(false);
    p.emptyOrderedDict();
    p.tuple();
    p.reduce();
  }
  p.setItems();
  p.stop();
  const pickle = Buffer.concat(p.bytes());
  const enc = new TextEncoder();
  return storedZipChunks(
    [
      [`${archiveName}/data.pkl`, pickle],
      [`${archiveName}/byteorder`, enc.encode('little')],
      ...storages,
      [`${archiveName}/version`, enc.encode('3\n')],
    ],
    { align: 64 },
  );
}

/** Writes a state dict as torch.save would (zip format), atomically. */
export function writeTorchStateDict(path: string, tensors: Map<string, Tensor>): void {
  const stem = basename(path).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_') || 'archive';
  writeFileAtomic(path, encodeTorchStateDict(tensors, stem));
}
