// TensorBoard event files (TFEvents), written by hand: a record is
//   uint64 length · uint32 masked CRC32C(length) · data · uint32 masked CRC32C(data)
// (little-endian, TensorFlow's record_writer), and each record's data is a
// serialized tensorflow.Event protobuf. We write only the few fields that
// scalars and images need, so the protobuf encoding is a few lines here
// rather than a schema compiler:
//   Event         { double wall_time = 1; int64 step = 2; string file_version = 3;
//                   Summary summary = 5; SessionLog session_log = 7; }
//   Summary       { repeated Value value = 1; }
//   Summary.Value { string tag = 1; float simple_value = 2; Image image = 4; }
//   Summary.Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
//   SessionLog    { SessionStatus status = 1; }   (START = 1)
// A SessionLog START at step S makes TensorBoard drop the events of earlier
// files with steps ≥ S: a resumed run starts one with S just past the state
// it resumed from, so what an interrupted process wrote after that state
// (ticks the resumed run trains again) leaves the curves.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -----------------------------------

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TensorFlow's masked CRC: rotate right by 15 bits and add a constant (a CRC of data holding CRCs stays useful). */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

// ---- records ------------------------------------------------------------------------------

export function encodeRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** The records of an event file, each checked against both of its CRCs (throws naming the offset of a bad one). */
export function readRecords(bytes: Uint8Array): Buffer[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) throw new Error(`truncated record header at byte ${pos}`);
    const length = Number(buf.readBigUInt64LE(pos));
    if (buf.readUInt32LE(pos + 8) !== maskedCrc32c(buf.subarray(pos, pos + 8))) throw new Error(`bad length CRC at byte ${pos}`);
    if (pos + 12 + length + 4 > buf.length) throw new Error(`truncated record at byte ${pos}`);
    const data = buf.subarray(pos + 12, pos + 12 + length);
    if (buf.readUInt32LE(pos + 12 + length) !== maskedCrc32c(data)) throw new Error(`bad data CRC at byte ${pos}`);
    records.push(data);
    pos += 12 + length + 4;
  }
  return records;
}

// ---- the protobuf fields we write -----------------------------------------------------------

function varint(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode ${value} as a protobuf varint`);
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

/** A protobuf message under construction: fields appended in order. */
class Message {
  private readonly parts: Uint8Array[] = [];
  private key(field: number, wireType: number): void {
    this.parts.push(Uint8Array.from(varint(field * 8 + wireType)));
  }
  uint(field: number, value: number): this {
    this.key(field, 0);
    this.parts.push(Uint8Array.from(varint(value)));
    return this;
  }
  double(field: number, value: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }
  float(field: number, value: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, value: Uint8Array | string | Message): this {
    const data = value instanceof Message ? value.finish() : typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.key(field, 2);
    this.parts.push(Uint8Array.from(varint(data.length)), data);
    return this;
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface ImageSummary {
  tag: string;
  /** Encoded PNG. */
  png: Uint8Array;
  width: number;
  height: number;
  /** 1 grey, 3 RGB, 4 RGBA. */
  channels: number;
}

export function encodeScalarEvent(wallTime: number, step: number, scalars: Record<string, number>): Buffer {
  const summary = new Message();
  for (const [tag, value] of Object.entries(scalars)) summary.bytes(1, new Message().bytes(1, tag).float(2, value));
  return new Message().double(1, wallTime).uint(2, step).bytes(5, summary).finish();
}

export function encodeImageEvent(wallTime: number, step: number, image: ImageSummary): Buffer {
  const img = new Message().uint(1, image.height).uint(2, image.width).uint(3, image.channels).bytes(4, image.png);
  const summary = new Message().bytes(1, new Message().bytes(1, image.tag).bytes(4, img));
  return new Message().double(1, wallTime).uint(2, step).bytes(5, summary).finish();
}

export function encodeFileVersionEvent(wallTime: number): Buffer {
  return new Message().double(1, wallTime).bytes(3, 'brain.Event:2').finish();
}

export function encodeSessionStartEvent(wallTime: number, step: number): Buffer {
  return new Message().double(1, wallTime).uint(2, step).bytes(7, new Message().uint(1, 1)).finish();
}

/** Width, height and channels of a PNG, from its IHDR chunk. */
export function pngGeometry(png: Uint8Array): { width: number; height: number; channels: number } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (b.length < 26 || b.readUInt32BE(0) !== 0x89504e47 || b.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG file');
  const channels = ({ 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 } as Record<number, number>)[b[25]!] ?? 3;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), channels };
}

// ---- the writer -----------------------------------------------------------------------------

let filesOpened = 0;

/**
 * The name of a new event file in `dir`: `events.out.tfevents.<seconds>.<host>.<pid>.<n>`.
 * TensorBoard reads a folder's files in name order, so the seconds are made
 * larger than those of any file already there (a resumed run started within
 * the same second as the end of the last one still sorts after it).
 */
function nextEventFileName(dir: string, nowSec: number): string {
  let sec = Math.floor(nowSec);
  try {
    for (const f of readdirSync(dir)) {
      const s = /^events\.out\.tfevents\.(\d+)\./.exec(f)?.[1];
      if (s !== undefined) sec = Math.max(sec, Number(s) + 1);
    }
  } catch {
    /* a new folder */
  }
  return `events.out.tfevents.${String(sec).padStart(10, '0')}.${hostname().replace(/[^\w-]/g, '_')}.${process.pid}.${filesOpened++}`;
}

/**
 * Appends events to a new file in `dir` (each process, and so each resumed
 * segment of a run, gets its own; see nextEventFileName). Writes go
 * straight to the file, unbuffered, so TensorBoard sees each tick as it
 * happens. The first failure to write is reported through `onError` and
 * turns the writer off: TensorBoard output never stops a training run.
 */
export class TFEventsWriter {
  readonly path: string;
  private fd: number | null = null;
  private readonly onError: (message: string) => void;

  constructor(
    dir: string,
    /** startStep: write a SessionLog START at this step (see above). */
    options: { startStep?: number; onError?: (message: string) => void } = {},
  ) {
    this.onError = options.onError ?? ((m) => process.stderr.write(`warning: ${m}\n`));
    const now = Date.now() / 1000;
    this.path = join(dir, nextEventFileName(dir, now));
    try {
      mkdirSync(dir, { recursive: true });
      this.fd = openSync(this.path, 'a');
    } catch (err) {
      this.fail(err);
      return;
    }
    this.write(encodeFileVersionEvent(now));
    if (options.startStep !== undefined) this.write(encodeSessionStartEvent(now, options.startStep));
  }

  get enabled(): boolean {
    return this.fd !== null;
  }

  scalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    if (Object.keys(scalars).length) this.write(encodeScalarEvent(wallTime, step, scalars));
  }

  image(step: number, tag: string, png: Uint8Array, wallTime = Date.now() / 1000): void {
    if (this.fd === null) return;
    try {
      this.write(encodeImageEvent(wallTime, step, { tag, png, ...pngGeometry(png) }));
    } catch (err) {
      this.fail(err);
    }
  }

  close(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      /* nothing left to do */
    }
    this.fd = null;
  }

  private write(event: Uint8Array): void {
    if (this.fd === null) return;
    try {
      const record = encodeRecord(event);
      let offset = 0;
      while (offset < record.length) offset += writeSync(this.fd, record, offset, record.length - offset);
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already failing */
      }
    }
    this.fd = null;
    this.onError(`TensorBoard events (${this.path}) are off for the rest of this run: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** An event file's records (CRC-checked) as raw Event messages: for tests and tools. */
export function readEventFile(path: string): Buffer[] {
  return readRecords(readFileSync(path));
}
