// Safetensors I/O: bit-exact round trips for every dtype, rejection of
// malformed files with a message naming the file, atomic writes, and the
// project's reference vectors.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveTensors, scalar, scope, tensor, zeros, type DType, type Tensor } from '../src/tensor/index.js';
import { tensorBytes } from '../src/tensor/raw-bytes.js';
import { ChecksumError, decodeSafetensors, encodeSafetensors, inspectSafetensors, readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { liveTensorsAfterGc } from './helpers/gc.js';



/** The raw bytes of a tensor (what safetensors stores). */
const rawBytes = (t: Tensor) => Buffer.from(tensorBytes(t));

/** Builds a safetensors file from a header (object or raw string) and a data section. */
function buildFile(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Buffer {
  const json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

/** An independent reading of a file's header: name → { dtype, shape, offsets }. */
function manifestOf(path: string): { entries: Map<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; metadata: Record<string, string>; dataStart: number } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  delete header.__metadata__;
  return { entries: new Map(Object.entries(header) as [string, { dtype: string; shape: number[]; data_offsets: [number, number] }][]), metadata, dataStart: 8 + n };
}

const FORMAT_TO_DTYPE: Record<string, DType> = { F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool' };

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'engine-safetensors-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('round trip', () => {
  /** One tensor per dtype, with the awkward values of each (NaN payloads, −0, subnormals, extremes). */
  const makeAll = (): Record<string, Tensor> => ({
    f32: tensor(new Float32Array([0, -0, 1.5, Number.NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38]), [2, 4]),
    f64: tensor(new Float64Array([0.1, -0, Number.NaN, 5e-324, 1.7976931348623157e308, -1 / 3])),
    f16: tensor(new Uint16Array([0x0000, 0x8000, 0x3c00, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x7bff]), [2, 2, 2], { dtype: 'float16' }),
    bf16: tensor(new Uint16Array([0x3f80, 0x8000, 0x7f80, 0x7fc1, 0x0001, 0xff7f]), [3, 2], { dtype: 'bfloat16' }),
    i64: tensor(new BigInt64Array([2n ** 63n - 1n, -(2n ** 63n), 0n, -1n, 2n ** 53n + 1n])),
    i32: tensor(new Int32Array([2 ** 31 - 1, -(2 ** 31), 7])),
    u8: tensor(new Uint8Array([0, 255, 128])),
    bool: tensor([true, false, true, true], [2, 2], { dtype: 'bool' }),
    empty: zeros([0, 3]),
    scalar: scalar(2.5, { dtype: 'float64' }),
  });

  it('every dtype comes back with the same name, dtype, shape and bytes, and the metadata too', () => {
    const all = makeAll();
    const metadata = { format: 'pt', note: 'ünïcödé ✓ "quoted"', config: JSON.stringify({ a: [1, 2], b: 'x' }) };
    const file = join(dir, 'all.safetensors');
    writeSafetensors(file, all, metadata);
    const loaded = readSafetensors(file);
    assert.deepEqual(loaded.metadata, metadata);
    assert.deepEqual([...loaded.tensors.keys()].sort(), Object.keys(all).sort());
    for (const [name, t] of Object.entries(all)) {
      const back = loaded.tensors.get(name)!;
      assert.equal(back.dtype, t.dtype, `${name} dtype`);
      assert.deepEqual([...back.shape], [...t.shape], `${name} shape`);
      assert.ok(rawBytes(back).equals(rawBytes(t)), `${name} bytes differ`);
    }
    // The dtypes are all there.
    assert.deepEqual(new Set(Object.values(all).map((t) => t.dtype)), new Set(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool']));
    // Writing what was read gives the same file, byte for byte.
    const again = join(dir, 'again.safetensors');
    writeSafetensors(again, loaded.tensors, loaded.metadata);
    assert.ok(readFileSync(again).equals(readFileSync(file)));
    // The header is standard: 8-byte LE length, JSON with dtype/shape/data_offsets, 8-byte aligned data.
    const m = manifestOf(file);
    assert.equal(m.dataStart % 8, 0);
    assert.deepEqual(m.entries.get('f16'), { dtype: 'F16', shape: [2, 2, 2], data_offsets: m.entries.get('f16')!.data_offsets });
    assert.equal(m.entries.get('bool')!.dtype, 'BOOL');
    assert.equal(m.entries.get('bf16')!.dtype, 'BF16');
    assert.deepEqual(m.entries.get('scalar')!.shape, []);
  });

  it('a checksum of the data in every file written, checked on every read; files without one still load', () => {
    const file = join(dir, 'checked.safetensors');
    writeSafetensors(file, { w: tensor([1, 2, 3, 4]) }, { kind: 'state' });
    const m = manifestOf(file);
    assert.match(m.metadata.data_sha256!, /^[0-9a-f]{64}$/);
    assert.deepEqual(readSafetensors(file).metadata, { kind: 'state' }, 'the checksum is the file\'s, not part of what it says');
    // One flipped bit in the data: a clear error naming the file, for readers and for inspect alike.
    const bytes = readFileSync(file);
    bytes[m.dataStart + 5]! ^= 0x10;
    const bad = join(dir, 'flipped.safetensors');
    writeFileSync(bad, bytes);
    assert.throws(() => readSafetensors(bad), (e: Error) => e instanceof ChecksumError && e.message.startsWith(`${bad}: the data does not match the checksum`));
    assert.throws(() => inspectSafetensors(bad), ChecksumError);
    // A file written without one (older versions, other tools) loads as before.
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const plain = join(dir, 'plain.safetensors');
    writeFileSync(plain, Buffer.concat([len, Buffer.from(header), Buffer.from(new Float32Array([7]).buffer)]));
    assert.deepEqual(readSafetensors(plain).tensors.get('w')!.toArray(), [7]);
  });

  it('in memory: encode/decode, non-contiguous tensors, no metadata', () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]).transpose(0, 1); // stored in logical order
    const bytes = Buffer.concat(encodeSafetensors({ t }));
    const back = decodeSafetensors(bytes);
    assert.deepEqual(back.tensors.get('t')!.toArray(), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(back.metadata, {});
    assert.throws(() => encodeSafetensors({ __metadata__: t }), /reserved/);
  });

  it('accepts an empty tensor that shares its offset with a neighbour, in any header order', () => {
    // As written by the Python library: offsets follow (dtype, name) order, JSON keys are alphabetical.
    const header = { a: { dtype: 'F32', shape: [1], data_offsets: [8, 12] }, y: { dtype: 'F64', shape: [1], data_offsets: [0, 8] }, z: { dtype: 'F64', shape: [0], data_offsets: [8, 8] } };
    const data = new Uint8Array(12);
    new DataView(data.buffer).setFloat64(0, 0.25, true);
    new DataView(data.buffer).setFloat32(8, -2, true);
    const back = decodeSafetensors(buildFile(header, data), 'empty-neighbour.safetensors');
    assert.deepEqual(back.tensors.get('y')!.toArray(), [0.25]);
    assert.deepEqual(back.tensors.get('a')!.toArray(), [-2]);
    assert.deepEqual([...back.tensors.get('z')!.shape], [0]);
  });
});

describe('malformed files are rejected with an error naming the file', () => {
  const valid = () => {
    const file = join(dir, 'valid.safetensors');
    scope(() => writeSafetensors(file, { a: tensor([1, 2, 3, 4]), b: tensor([5, 6], undefined, { dtype: 'float64' }) }, { k: 'v' }));
    return readFileSync(file);
  };
  const rejects = (bytes: Uint8Array, name: string, ...patterns: RegExp[]) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    const before = liveTensorsAfterGc();
    assert.throws(
      () => readSafetensors(path),
      (e: unknown) => {
        assert.ok(e instanceof Error, 'an Error');
        assert.ok(e.message.includes(path), `message ${JSON.stringify(e.message)} does not name the file`);
        for (const p of patterns) assert.match(e.message, p);
        return true;
      },
      name,
    );
    // At most `before`: a GC may finalise an earlier test's garbage meanwhile, but a leak adds.
    assert.ok(liveTensors() <= before, `${name}: tensors leaked from a failed read`);
  };

  it('truncated files, cut inside the length, the header and the data', () => {
    const bytes = valid();
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const cuts: [string, number][] = [
      ['empty', 0],
      ['inside the 8-byte length', 3],
      ['just the length', 8],
      ['inside the header', 8 + Math.floor(headerLen / 2)],
      ['header without data', 8 + headerLen],
      ['inside the first tensor', 8 + headerLen + 5],
      ['one byte short', bytes.length - 1],
    ];
    for (const [what, at] of cuts) rejects(bytes.subarray(0, at), `truncated-${what.replaceAll(' ', '-')}.safetensors`, /safetensors/);
    rejects(bytes.subarray(0, 5), 'short.safetensors', /8-byte/);
    rejects(bytes.subarray(0, 8 + headerLen - 1), 'cut-header.safetensors', /truncated/);
    rejects(bytes.subarray(0, bytes.length - 1), 'cut-data.safetensors', /truncated|bytes/);
    // Extra bytes at the end are not silently ignored either.
    rejects(Buffer.concat([bytes, Buffer.alloc(4)]), 'trailing.safetensors', /trailing/);
  });

  it('a huge header length', () => {
    const bytes = valid();
    const huge = Buffer.from(bytes);
    huge.writeBigUInt64LE(2n ** 62n);
    rejects(huge, 'huge-header.safetensors', /header length/);
    const big = Buffer.from(bytes);
    big.writeBigUInt64LE(BigInt(bytes.length)); // plausible but longer than the file
    rejects(big, 'long-header.safetensors', /truncated/);
  });

  it('headers that are not JSON objects', () => {
    rejects(buildFile('{"a": {"dtype": "F32", '), 'not-json.safetensors', /JSON/);
    rejects(buildFile('[1, 2, 3]'), 'array-header.safetensors', /JSON object/);
    rejects(buildFile('null'), 'null-header.safetensors', /JSON object/);
    const badUtf8 = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    rejects(buildFile(badUtf8), 'bad-utf8.safetensors', /JSON/);
    rejects(buildFile({ __metadata__: { n: 3 } }), 'metadata-number.safetensors', /__metadata__/);
  });

  it('bad offsets, shapes and dtypes', () => {
    const d12 = new Uint8Array(12);
    const cases: [string, unknown, Uint8Array, RegExp][] = [
      ['overlap', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, d12, /overlap/],
      ['gap', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, d12, /gap|overlap/],
      ['out-of-range', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d12, /ends at byte 16/],
      ['wrong-length', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 12] } }, d12, /needs 8 bytes/],
      ['wrong-length-dtype', { a: { dtype: 'F64', shape: [3], data_offsets: [0, 12] } }, d12, /needs 24 bytes/],
      ['reversed', { a: { dtype: 'U8', shape: [12], data_offsets: [12, 0] } }, d12, /data_offsets/],
      ['negative-offset', { a: { dtype: 'U8', shape: [12], data_offsets: [-1, 11] } }, d12, /data_offsets/],
      ['fractional-offset', { a: { dtype: 'U8', shape: [12], data_offsets: [0, 11.5] } }, d12, /data_offsets/],
      ['missing-offsets', { a: { dtype: 'U8', shape: [12] } }, d12, /data_offsets/],
      ['unknown-dtype', { a: { dtype: 'F8_E4M3', shape: [12], data_offsets: [0, 12] } }, d12, /dtype "F8_E4M3"/],
      ['complex-dtype', { a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8), /dtype/],
      ['no-dtype', { a: { shape: [12], data_offsets: [0, 12] } }, d12, /dtype/],
      ['negative-shape', { a: { dtype: 'U8', shape: [-12], data_offsets: [0, 12] } }, d12, /shape/],
      ['string-shape', { a: { dtype: 'U8', shape: '12', data_offsets: [0, 12] } }, d12, /shape/],
      ['entry-not-object', { a: 5 }, d12, /dtype/],
    ];
    for (const [name, header, data, pattern] of cases) rejects(buildFile(header, data), `${name}.safetensors`, pattern);
  });

  it('a missing file', () => {
    const path = join(dir, 'does-not-exist.safetensors');
    assert.throws(() => readSafetensors(path), (e: unknown) => e instanceof Error && e.message.includes(path));
  });
});

describe('atomic writes', () => {
  it('leave only the target file, also when overwriting', () => {
    const sub = join(dir, 'atomic-ok');
    mkdirSync(sub);
    const file = join(sub, 'net.safetensors');
    scope(() => writeSafetensors(file, { w: tensor([1, 2]) }));
    scope(() => writeSafetensors(file, { w: tensor([3, 4, 5]) }));
    assert.deepEqual(readdirSync(sub), ['net.safetensors']);
    assert.deepEqual(scope(() => readSafetensors(file).tensors.get('w')!.toArray()), [3, 4, 5]);
  });

  it('a missing target directory is a clear error that creates nothing', () => {
    const missing = join(dir, 'no-such-dir', 'net.safetensors');
    assert.throws(() => scope(() => writeSafetensors(missing, { w: tensor([1]) })), (e: unknown) => e instanceof Error && e.message.includes(missing));
    assert.equal(existsSync(join(dir, 'no-such-dir')), false);
  });

  it('a write that fails part way leaves the previous file intact and no temporary file', () => {
    const sub = join(dir, 'atomic-fail');
    mkdirSync(sub);
    const file = join(sub, 'state.safetensors');
    scope(() => writeSafetensors(file, { w: tensor([1, 2, 3]) }, { step: '1' }));
    const previous = readFileSync(file);
    // The second chunk is not a buffer: writeSync throws after the first chunk reached the temporary file.
    assert.throws(() => writeFileAtomic(file, [new Uint8Array(1000), { length: 10 } as unknown as Uint8Array]), (e: unknown) => e instanceof Error && e.message.includes(file));
    assert.ok(readFileSync(file).equals(previous), 'previous file changed');
    assert.deepEqual(readdirSync(sub), ['state.safetensors'], 'a temporary file was left behind');
    // Encoding failures (a disposed tensor) happen before anything is written.
    const gone = tensor([9]);
    gone.dispose();
    assert.throws(() => writeSafetensors(file, { w: gone }), /dispose/);
    assert.ok(readFileSync(file).equals(previous));
    assert.deepEqual(readdirSync(sub), ['state.safetensors']);
  });

  it('a rename that fails (the target is a directory) cleans up the temporary file', () => {
    const sub = join(dir, 'atomic-rename');
    const target = join(sub, 'occupied');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'keep.txt'), 'x');
    assert.throws(() => writeFileAtomic(target, [new Uint8Array([1, 2, 3])]), (e: unknown) => e instanceof Error && e.message.includes(target));
    assert.deepEqual(readdirSync(sub), ['occupied']);
    assert.deepEqual(readdirSync(target), ['keep.txt']);
  });
});

describe('reference vectors', () => {
  const files = existsSync(REFERENCE_DIR) ? readdirSync(REFERENCE_DIR).filter((f) => f.endsWith('.safetensors')).sort() : [];

  it('the reference directory holds the documented cases', () => {
    assert.deepEqual(files, ['net_adm.safetensors', 'net_ddpmpp.safetensors', 'net_ddpmpp_cond.safetensors', 'net_ncsnpp.safetensors', 'patch_loss.safetensors', 'sampler.safetensors']);
  });

  for (const name of files) {
    it(`${name} loads and matches the manifest of its header, bit for bit`, () => {
      const path = join(REFERENCE_DIR, name);
      const manifest = manifestOf(path);
      const raw = readFileSync(path);
      const before = liveTensorsAfterGc();
      const inspected = inspectSafetensors(path);
      assert.ok(liveTensors() <= before, 'inspect creates no tensors');
      assert.deepEqual(inspected.metadata, manifest.metadata);
      const loaded = readSafetensors(path);
      try {
        assert.deepEqual(loaded.metadata, manifest.metadata);
        assert.deepEqual([...loaded.tensors.keys()].sort(), [...manifest.entries.keys()].sort());
        for (const [tname, e] of manifest.entries) {
          const t = loaded.tensors.get(tname)!;
          assert.equal(t.dtype, FORMAT_TO_DTYPE[e.dtype], `${tname} dtype`);
          assert.deepEqual([...t.shape], e.shape, `${tname} shape`);
          assert.equal(inspected.entries.get(tname)!.dtype, FORMAT_TO_DTYPE[e.dtype]);
          const [b, en] = e.data_offsets;
          assert.ok(rawBytes(t).equals(raw.subarray(manifest.dataStart + b, manifest.dataStart + en)), `${tname} bytes`);
        }
        // Every value is finite (the references hold no NaN/Inf).
        for (const [tname, t] of loaded.tensors) if (t.dtype.startsWith('float')) assert.ok(t.allFinite(), `${tname} has non-finite values`);
        // Metadata values are JSON.
        for (const [k, v] of Object.entries(loaded.metadata)) assert.doesNotThrow(() => JSON.parse(v), `metadata ${k} is not JSON`);
        if (name.startsWith('net_')) {
          const params = [...manifest.entries].filter(([n]) => n.startsWith('param.'));
          const trainable = params.filter(([n]) => !n.endsWith('.freqs') && !n.endsWith('.resample_filter'));
          const count = trainable.reduce((s, [, e]) => s + e.shape.reduce((a, b) => a * b, 1), 0);
          assert.equal(count, Number(loaded.metadata.num_parameters), 'parameter shapes add up to num_parameters');
          assert.deepEqual([...loaded.tensors.get('param.model.enc.16x16_conv.weight')!.shape], [32, 5, 3, 3]);
          assert.deepEqual([...loaded.tensors.get('out.D')!.shape], [3, 3, 16, 16]);
          assert.deepEqual([...loaded.tensors.get('out.patch_D')!.shape], [3, 3, 8, 8]);
        }
      } finally {
        for (const t of loaded.tensors.values()) t.dispose();
      }
      assert.ok(liveTensors() <= before, 'every loaded tensor was disposed');
    });
  }

  it('specific entries: net_ddpmpp conv shape, the sampler works in float64, the patch loss offsets are int64', () => {
    const net = inspectSafetensors(join(REFERENCE_DIR, 'net_ddpmpp.safetensors'));
    assert.deepEqual(net.entries.get('param.model.enc.16x16_conv.weight'), { ...net.entries.get('param.model.enc.16x16_conv.weight')!, dtype: 'float32', shape: [32, 5, 3, 3] });
    assert.equal(JSON.parse(net.metadata.config!).img_channels, 5);
    const sampler = inspectSafetensors(join(REFERENCE_DIR, 'sampler.safetensors'));
    const outs = [...sampler.entries].filter(([n]) => n.startsWith('out.'));
    assert.deepEqual(outs.map(([n]) => n).sort(), ['out.deterministic', 'out.stochastic']);
    for (const [n, e] of outs) {
      assert.equal(e.dtype, 'float64', `${n} should be float64`);
      assert.deepEqual(e.shape, [2, 3, 16, 16]);
    }
    const loss = inspectSafetensors(join(REFERENCE_DIR, 'patch_loss.safetensors'));
    assert.equal(loss.entries.get('in.row_offsets')!.dtype, 'int64');
    assert.equal(loss.entries.get('in.col_offsets')!.dtype, 'int64');
    assert.deepEqual(loss.entries.get('out.x_pos')!.shape, [4, 2, 8, 8]);
  });
});
