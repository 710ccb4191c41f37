// A small synchronous zip reader for dataset zips. Why not yauzl: it reads
// every central-directory record and every entry through separate async fs
// calls and streams, ~0.2 ms of overhead per image, so a 60,000-image zip spent
// >10 s mostly idle. Here the central directory is one read and each entry
// two positioned reads. Supports stored and deflated entries, zip64, UTF-8
// names, and checks every entry's CRC-32 (yauzl does not), so a damaged
// dataset cannot load silently.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { DatasetError } from './errors.js';
import { crc32 } from './png.js';

/** An entry of a zip's central directory. */
export interface ZipEntryInfo {
  /** As stored, '/'-separated. */
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const Z64_LOCATOR_SIG = 0x07064b50;
const Z64_EOCD_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const U32 = 0xffffffff;
const U16 = 0xffff;

// CP437 upper half, for names without the UTF-8 flag (old Windows zippers).
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

function decodeName(raw: Buffer, utf8: boolean): string {
  if (utf8) return raw.toString('utf8');
  let s = '';
  for (const b of raw) s += b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80];
  return s;
}

/** How `ZipReader.open` words its errors. */
export interface ZipOpenOptions {
  /** What the caller wanted, for the error when the file is not a zip (default: a dataset's wording). */
  expected?: string;
}

/**
 * The most an entry may inflate to, per compressed byte, unless the caller
 * knows its size: images and tensors compress far less than this; only
 * runs of identical bytes (a bomb) compress more.
 */
export const MAX_INFLATE_RATIO = inflateRatioSetting();
const MIN_INFLATE_LIMIT = 1 << 20;

/** PD_MAX_INFLATE_RATIO raises (or lowers) the ratio, for a zip of unusually compressible files. */
function inflateRatioSetting(): number {
  const v = Number(process.env.PD_MAX_INFLATE_RATIO ?? 100);
  return Number.isFinite(v) && v >= 1 ? v : 100;
}

/**
 * A zip read synchronously: one read of the central directory, two positioned reads per entry, each entry's
 * CRC-32 checked; stored and deflated entries, zip64 and UTF-8 names.
 */
export class ZipReader {
  readonly entries: readonly ZipEntryInfo[];
  private fd: number | null;
  private readonly size: number;
  private readonly expected: string;

  private constructor(
    readonly file: string,
    fd: number | null,
    private readonly buffer: Uint8Array | null,
    options: ZipOpenOptions,
  ) {
    this.fd = fd;
    this.size = buffer ? buffer.length : fstatSync(fd!).size;
    this.expected = options.expected ?? 'a folder of images or a .zip of them';
    try {
      this.entries = this.readDirectory();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Open and index a zip; throws DatasetError when it is not a (complete) zip. */
  static open(file: string, options: ZipOpenOptions = {}): ZipReader {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (err) {
      throw new DatasetError(`cannot open ${file}: ${(err as Error).message}`, { file, cause: err });
    }
    return new ZipReader(file, fd, null, options);
  }

  /** Index a zip held in memory (e.g. a decompressed .pth.gz); `name` stands for the file in errors. */
  static fromBuffer(buffer: Uint8Array, name: string, options: ZipOpenOptions = {}): ZipReader {
    return new ZipReader(name, null, buffer, options);
  }

  private bad(what: string): DatasetError {
    return new DatasetError(`${this.file} is not a readable zip file (${what}); expected ${this.expected}`, { file: this.file });
  }

  private readAt(position: number, length: number): Buffer {
    if (this.buffer) {
      if (position + length > this.buffer.length) throw this.bad(`unexpected end of file at byte ${this.buffer.length}`);
      return Buffer.from(this.buffer.buffer, this.buffer.byteOffset + position, length);
    }
    if (this.fd === null) throw new Error('ZipReader: closed');
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== length) throw this.bad(`unexpected end of file at byte ${position + got}`);
    return buf;
  }

  private readDirectory(): ZipEntryInfo[] {
    // The end record is the last 22 bytes plus a comment of up to 64 KiB.
    const tailLen = Math.min(this.size, 22 + 0xffff);
    if (tailLen < 22) throw this.bad('file too short');
    const tailStart = this.size - tailLen;
    const tail = this.readAt(tailStart, tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw this.bad('no end-of-central-directory record: not a zip, or truncated');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === U16 || cdSize === U32 || cdOffset === U32) {
      const locPos = tailStart + eocd - 20;
      const loc = locPos >= 0 ? this.readAt(locPos, 20) : null;
      if (loc && loc.readUInt32LE(0) === Z64_LOCATOR_SIG) {
        const z = this.readAt(Number(loc.readBigUInt64LE(8)), 56);
        if (z.readUInt32LE(0) !== Z64_EOCD_SIG) throw this.bad('bad zip64 end record');
        count = Number(z.readBigUInt64LE(32));
        cdSize = Number(z.readBigUInt64LE(40));
        cdOffset = Number(z.readBigUInt64LE(48));
      }
    }
    if (cdOffset + cdSize > this.size) throw this.bad('central directory lies beyond the end of the file: truncated');
    const cd = this.readAt(cdOffset, cdSize);
    const entries: ZipEntryInfo[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CDH_SIG) throw this.bad(`bad central directory record ${i}`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw this.bad(`central directory record ${i} overruns`);
      const name = decodeName(cd.subarray(p + 46, p + 46 + nameLen), (flags & 0x800) !== 0);
      // zip64 extra field: 64-bit values for exactly the fields stored as 0xFFFFFFFF, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === U32 && q + 8 <= e + 4 + len) (size = Number(cd.readBigUInt64LE(q))), (q += 8);
          if (compressedSize === U32 && q + 8 <= e + 4 + len) (compressedSize = Number(cd.readBigUInt64LE(q))), (q += 8);
          if (localOffset === U32 && q + 8 <= e + 4 + len) localOffset = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      entries.push({ name, method, flags, crc, compressedSize, size, localOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  }

  /**
   * The entry's bytes, CRC-checked. Throws DatasetError naming zip:entry.
   * The size its header declares is checked before anything is inflated:
   * against `maxBytes` when the caller knows what the entry must hold (a
   * tensor's storage), else against its compressed size × MAX_INFLATE_RATIO
   * (at least 1 MiB), so a small zip that declares gigabytes of zeros is
   * refused without the memory it asks for.
   */
  read(entry: ZipEntryInfo, options: { maxBytes?: number } = {}): Buffer {
    const where = `${this.file}:${entry.name}`;
    const fail = (why: string) => new DatasetError(`cannot read ${where}: ${why}`, { file: where });
    if (options.maxBytes !== undefined && entry.size > options.maxBytes)
      throw fail(`it declares ${entry.size} bytes where ${options.maxBytes} are expected (damaged, or a decompression bomb)`);
    // A stored entry holds what it declares; a deflated one at most MAX_INFLATE_RATIO× its compressed bytes.
    if (entry.method !== 0 && entry.size > Math.max(MIN_INFLATE_LIMIT, entry.compressedSize * MAX_INFLATE_RATIO))
      throw fail(`it declares ${entry.size} bytes from ${entry.compressedSize} compressed, more than ${MAX_INFLATE_RATIO}× (a decompression bomb, or a damaged zip; PD_MAX_INFLATE_RATIO raises the limit)`);
    if (entry.flags & 0x1) throw fail('the entry is encrypted; encrypted zips are not supported');
    if (entry.localOffset + 30 > this.size) throw fail('local header lies beyond the end of the file (truncated zip)');
    const h = this.readAt(entry.localOffset, 30);
    if (h.readUInt32LE(0) !== LFH_SIG) throw fail('bad local header signature (damaged zip)');
    const start = entry.localOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (start + entry.compressedSize > this.size) throw fail('data lies beyond the end of the file (truncated zip)');
    const raw = this.readAt(start, entry.compressedSize);
    let data: Buffer;
    if (entry.method === 0) data = raw;
    else if (entry.method === 8) {
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      } catch (err) {
        throw fail(`corrupt deflate data (${(err as Error).message})`);
      }
    } else throw fail(`unsupported compression method ${entry.method} (only stored and deflate)`);
    if (data.length !== entry.size) throw fail(`size ${data.length} differs from the recorded ${entry.size} (damaged zip)`);
    if (crc32(data) !== entry.crc) throw fail('CRC-32 mismatch: the data is corrupt');
    return data;
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
